#if canImport(Glibc)
import Glibc
#endif

extension Executor {
    /// Makes glibc's malloc keep freed memory for reuse, once per process (`Options.reuseFreedMemory`).
    ///
    /// glibc serves every block above its mmap threshold (at most 32 MiB) with a fresh `mmap` and unmaps it on `free`,
    /// so at batch 64 each node's output — often 100–300 MiB — is faulted in page by page, zeroed by the kernel, on
    /// every run: measured on MobileNetV2 and SqueezeNet 1.1 at 224 px, batch 64, that was a third of the time. With
    /// mmap off (`M_MMAP_MAX` 0) and the heap never trimmed, a value freed after its last reader is the memory the next
    /// node's output gets. The setting is process-wide and affects only where malloc takes memory from; peak RSS moves
    /// by about ±10% (lower on SqueezeNet, higher on MobileNetV2).
    static let reusingFreedMemory: Void = {
        #if canImport(Glibc)
        // <malloc.h> is not in the Glibc module: look mallopt up (absent on other C libraries: nothing happens).
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(nil, "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        let (trimThreshold, mmapMax): (Int32, Int32) = (-1, -4)  // M_TRIM_THRESHOLD, M_MMAP_MAX
        _ = mallopt(mmapMax, 0)
        _ = mallopt(trimThreshold, Int32.max)
        #endif
    }()
}
