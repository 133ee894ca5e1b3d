/// Typed attribute access with ONNX defaults.
extension Node {
    public func int(_ key: String) -> Int? {
        if case .int(let v)? = attributes[key] { return v }
        return nil
    }

    public func int(_ key: String, default value: Int) -> Int { int(key) ?? value }

    public func float(_ key: String, default value: Float) -> Float {
        switch attributes[key] {
        case .float(let v)?: v
        case .int(let v)?: Float(v)
        default: value
        }
    }

    public func ints(_ key: String) -> [Int]? {
        switch attributes[key] {
        case .ints(let v)?: v
        case .int(let v)?: [v]
        default: nil
        }
    }

    public func floats(_ key: String) -> [Float]? {
        if case .floats(let v)? = attributes[key] { return v }
        return nil
    }

    public func string(_ key: String, default value: String) -> String {
        if case .string(let v)? = attributes[key] { return v }
        return value
    }
}
