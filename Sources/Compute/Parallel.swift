import CKernels
import Foundation
#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif

/// How many threads the kernels split their work over (all cores by default).
public enum ComputeThreads {
    nonisolated(unsafe) private static var configured: Int = 0

    /// The worker count; the first read pins OpenBLAS to one thread per call, because the kernels
    /// split work across cores themselves (two BLAS thread pools would fight over the same cores). On a thread
    /// running a part of a parallel region, 1 plus the region's workers that have finished their parts and wait for it
    /// to end (`wc_pool_idle_workers`: a region started there takes them; 1 while none has, and inside such a region),
    /// so the work it calls is planned for the threads that will run it (`parallelPieces`); at most the calling
    /// thread's limit where one is set (`limited`).
    public static var count: Int {
        if configured == 0 { configure(max(1, ProcessInfoCores.active)) }
        let limit = Int(wc_pool_worker_limit()), workers = limit > 0 ? min(limit, configured) : configured
        return wc_pool_in_part() != 0 ? min(workers, 1 + Int(wc_pool_idle_workers())) : workers
    }

    /// Runs `body` with this thread's regions planned for at most `workers` workers (0: all).
    public static func limited<T>(to workers: Int, _ body: () throws -> T) rethrows -> T {
        let previous = wc_pool_limit_workers(Int32(workers))
        defer { wc_pool_limit_workers(previous) }
        return try body()
    }

    /// Whether regions started inside a piece of another take the workers that have finished their pieces of it and
    /// wait for it to end (`wc_pool_share_idle`; on by default). Process-wide.
    public static func shareIdleWorkers(_ on: Bool) { wc_pool_share_idle(on ? 1 : 0) }

    /// Whether a region of two pieces on two workers is split by the speeds the pool has learnt for them
    /// (`runInTwoPieces`; on by default) or evenly. Process-wide.
    public static func splitBySpeed(_ on: Bool) { wc_pool_split_by_speed(on ? 1 : 0) }

    public static func configure(_ threads: Int) {
        configured = max(1, threads)
        #if !canImport(Accelerate)
        openblas_set_num_threads(1)
        #endif
    }
}

enum ProcessInfoCores {
    static var active: Int { ProcessInfo.processInfo.activeProcessorCount }
}

/// Runs `body(range)` over `0..<count` split into contiguous chunks: one per worker, or two per worker when there are
/// at least four items per worker, handed out as the workers come free so that a worker slowed down (another process
/// on its core) takes fewer (AlexNet at batch 64, 4 alternating rounds: median 427 → 516 images/s; four chunks per
/// worker gained more there, 548, but cost MobileNetV2 at batch 1 6%, each chunk allocating its own scratch).
/// Runs inline when the work is too small to be worth a thread hop. With `evenly`, one chunk per worker: for bodies
/// that pay a fixed cost per chunk (a copy of their inputs). One chunk on each of two workers: split where the two are
/// expected to finish together (`runInTwoPieces`).
@inlinable
public func parallelChunks(_ count: Int, minimumChunk: Int = 1, evenly: Bool = false, _ body: (Range<Int>) -> Void) {
    let workers = min(ComputeThreads.count, max(1, count / max(1, minimumChunk)))
    if workers <= 1 || count <= 1 {
        if count > 0 { body(0..<count) }
        return
    }
    let pieces = count >= 4 * workers && !evenly ? 2 * workers : workers
    if pieces == 2 { return runInTwoPieces(count, body) }
    let chunk = (count + pieces - 1) / pieces
    runPiecesOnPool(workers: workers, pieces: pieces) { p in
        let start = p * chunk
        let end = min(count, start + chunk)
        if start < end { body(start..<end) }
    }
}

/// Runs `body(piece)` for every piece in 0..<count over the workers, each taking the next piece not yet taken, and
/// returns when all have finished. Each piece is a whole job for one thread (a pass of a few images through a network):
/// inside it `ComputeThreads.count` is 1 until another worker has no piece left to take, then counts that worker too,
/// which takes part in the regions the piece starts from then on instead of waiting for it (`wc_pool_idle_workers`).
public func parallelPieces(_ count: Int, _ body: (Int) -> Void) {
    guard count > 0 else { return }
    runPiecesOnPool(workers: min(ComputeThreads.count, count), pieces: count, body)
}

/// Runs `body(0..<split)` and `body(split..<count)` as a region of two pieces on two workers, the first as a rule on the
/// calling thread (count ≥ 2, at least one item each), split where the two are expected to finish together: the two
/// cores of a VM may run at different speeds for seconds at a time, and the pool learns their speeds from the times of
/// such regions (`wc_pool_caller_share`).
@usableFromInline
func runInTwoPieces(_ count: Int, _ body: (Range<Int>) -> Void) {
    let split = min(count - 1, max(1, Int((Double(count) * wc_pool_caller_share()).rounded())))
    runPiecesOnPool(workers: 2, pieces: 2, firstShare: Double(split) / Double(count)) {
        body($0 == 0 ? 0..<split : split..<count)
    }
}

/// Runs `part(p)` for p in 0..<pieces on `workers` threads of the pool (`wc_pool_run_pieces`), each taking the next
/// piece not yet taken, and returns when all have finished. `firstShare`: the share of the work in piece 0 of two, for
/// the pool to learn from (0: not known).
@usableFromInline
func runPiecesOnPool(workers: Int, pieces: Int, firstShare: Double = 0, _ part: (Int) -> Void) {
    withoutActuallyEscaping(part) { part in
        var task = part
        withUnsafeMutablePointer(to: &task) { task in
            wc_pool_run_pieces(Int32(workers), pieces, { context, piece in
                context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(piece))
            }, task, firstShare)
        }
    }
}

/// Runs `body(chunk, scratchA, scratchB, alone)` for chunks 0..<count, split over the workers, each range of chunks
/// with its own two scratch buffers of `scratch` floats. `alone` is true when a single worker runs every chunk, so the
/// body may parallelise inside (its GEMMs) instead.
@inlinable
public func forEachChunk(_ count: Int, scratch sizes: (Int, Int),
                         _ body: (Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, Bool) -> Void) {
    let alone = min(ComputeThreads.count, count) <= 1
    parallelChunks(alone ? min(count, 1) : count) { range in
        // A buffer of no floats is not allocated (one image's pointwise product uses neither): a stand-in.
        var none: Float = 0
        let a = sizes.0 > 0 ? UnsafeMutablePointer<Float>.allocate(capacity: sizes.0) : nil
        let b = sizes.1 > 0 ? UnsafeMutablePointer<Float>.allocate(capacity: sizes.1) : nil
        defer { a?.deallocate(); b?.deallocate() }
        withUnsafeMutablePointer(to: &none) { none in
            for chunk in (alone ? 0..<count : range) { body(chunk, a ?? none, b ?? none, alone) }
        }
    }
}
