import _FuzzSupport
import Foundation

// Built two ways (Scripts/fuzz.sh):
//  - with `-Xswiftc -sanitize=fuzzer,address -Xswiftc -DWC_LIBFUZZER`: a libFuzzer target; WC_FUZZ_TARGET=onnx|npy|idx|run|packed|product
//    picks the entry point, and libFuzzer's own flags (-runs, -max_total_time, corpus folders) apply;
//  - plain: `wc-fuzz TARGET RUNS SEED FILE…`, a seeded mutation loop over the given seed files (no libFuzzer needed).

#if WC_LIBFUZZER
import _CFuzzer

nonisolated(unsafe) private var selected: FuzzTarget?

/// SwiftPM links an executable's entry point as `<module>_main`; this one hands control to libFuzzer's driver.
@_cdecl("wc_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzTarget.prepare()
    let name = ProcessInfo.processInfo.environment["WC_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
        FileHandle.standardError.write(Data("set WC_FUZZ_TARGET to one of: \(names)\n".utf8))
        return 2
    }
    selected = target
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { bytes, size in
        selected!(bytes.map { Data(bytes: $0, count: size) } ?? Data())
        return 0
    }
}
#else
@main
struct WCFuzz {
    static func main() {
        let arguments = CommandLine.arguments.dropFirst()
        guard arguments.count >= 3, let target = FuzzTarget(rawValue: arguments.first!),
              let runs = Int(arguments.dropFirst().first!), let seed = UInt64(arguments.dropFirst(2).first!) else {
            let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")
            FileHandle.standardError.write(Data("usage: wc-fuzz \(names) RUNS SEED [SEED-FILE…]\n".utf8))
            exit(2)
        }
        FuzzTarget.prepare()
        let seeds = arguments.dropFirst(3).compactMap { FileManager.default.contents(atPath: $0) }
        var fuzzer = MutationFuzzer(seeds: seeds, seed: seed)
        let start = Date()
        for seedInput in seeds { target(seedInput) }
        for i in 1...max(1, runs) {
            target(fuzzer.mutated())
            if i % 100_000 == 0 { print("\(target.rawValue): \(i) executions, \(Int(Date().timeIntervalSince(start))) s") }
        }
        print("\(target.rawValue): \(runs) executions without a crash in \(String(format: "%.1f", Date().timeIntervalSince(start))) s (\(seeds.count) seeds, seed \(seed))")
    }
}
#endif
