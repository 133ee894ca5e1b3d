import Foundation

/// What the packed file holds: its size and, per compressed weight, how its index stream is stored.
public struct PackingReport: Sendable, Equatable {
    public var fileBytes: Int
    public var streams: [IndexStream]

    /// Encoded (`--json`) with snake_case keys, `bits_per_index` included.
    public struct IndexStream: Sendable, Encodable, Equatable {
        public var weight: String
        public var codebook: String
        public var entries: Int
        public var indices: Int
        /// ceil(log2 K): the bits per index of the bit-packed form.
        public var indexBits: Int
        /// Bytes the stream takes in the file.
        public var storedBytes: Int
        /// Shannon entropy of the indices, bits per index (the bound an entropy coder approaches).
        public var entropy: Double
        /// "bit-packed", "zstd" or "zstd byte planes".
        public var codec: String

        /// Bits per index as stored.
        public var bitsPerIndex: Double { indices == 0 ? 0 : Double(storedBytes * 8) / Double(indices) }

        enum CodingKeys: String, CodingKey {
            case weight, codebook, entries, indices, entropy, codec
            case indexBits = "index_bits", storedBytes = "stored_bytes", bitsPerIndex = "bits_per_index"
        }

        public init(weight: String, codebook: String, entries: Int, indices: Int, indexBits: Int, storedBytes: Int, entropy: Double, codec: String) {
            self.weight = weight
            self.codebook = codebook
            self.entries = entries
            self.indices = indices
            self.indexBits = indexBits
            self.storedBytes = storedBytes
            self.entropy = entropy
            self.codec = codec
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(weight, forKey: .weight)
            try c.encode(codebook, forKey: .codebook)
            try c.encode(entries, forKey: .entries)
            try c.encode(indices, forKey: .indices)
            try c.encode(indexBits, forKey: .indexBits)
            try c.encode(storedBytes, forKey: .storedBytes)
            try c.encode(bitsPerIndex, forKey: .bitsPerIndex)
            try c.encode(entropy, forKey: .entropy)
            try c.encode(codec, forKey: .codec)
        }
    }

    /// Over every stream: bits per index as stored and the entropy, weighted by index count.
    public var bitsPerIndex: Double {
        let n = streams.reduce(0) { $0 + $1.indices }
        return n == 0 ? 0 : Double(streams.reduce(0) { $0 + $1.storedBytes } * 8) / Double(n)
    }

    public var entropy: Double {
        let n = streams.reduce(0) { $0 + $1.indices }
        return n == 0 ? 0 : streams.reduce(0.0) { $0 + $1.entropy * Double($1.indices) } / Double(n)
    }

    /// One line per stream, for `compress` and `inspect`.
    public var lines: [String] {
        streams.map { s in
            "  \(s.weight): \(s.indices) indices, K=\(s.entries): \(String(format: "%.3f", s.bitsPerIndex)) bits per index stored (\(s.codec); "
                + "\(s.indexBits) bit-packed, entropy \(String(format: "%.3f", s.entropy)))"
        }
    }
}
