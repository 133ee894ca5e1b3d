import CKernels
import Compute
import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization
import Testing

/// `parallelChunks` covers every index exactly once, in contiguous ranges, whether it runs inline, one chunk per worker
/// or two per worker handed out as the workers come free.
@Suite struct ParallelTests {
    @Test(arguments: [1, 2, 3, 7, 8, 9, 100, 1001])
    func everyIndexOnce(_ count: Int) {
        var visits = [Int](repeating: 0, count: count)
        var calls = [Int](repeating: 0, count: count + 1)
        visits.withUnsafeMutableBufferPointer { v in
            calls.withUnsafeMutableBufferPointer { c in
                let (vAddress, cAddress) = (Int(bitPattern: v.baseAddress), Int(bitPattern: c.baseAddress))
                parallelChunks(count) { range in
                    let v = UnsafeMutablePointer<Int>(bitPattern: vAddress)!
                    let c = UnsafeMutablePointer<Int>(bitPattern: cAddress)!
                    for i in range { v[i] += 1 }
                    c[range.lowerBound] += 1  // ranges are disjoint, so each start is written by one call
                }
            }
        }
        #expect(visits == [Int](repeating: 1, count: count))
        #expect(calls.reduce(0, +) <= max(1, min(count, 2 * ComputeThreads.count)))
    }

    /// The calling thread takes a region's pieces from the front and the helpers from the back, so what the caller ran
    /// is always a run of first pieces (the same split in every region, whoever comes first).
    @Test func theCallerRunsTheFirstPieces() {
        let (pieces, rounds) = (6, 300)
        let onCaller = UnsafeMutablePointer<Bool>.allocate(capacity: pieces * rounds)
        defer { onCaller.deallocate() }
        onCaller.initialize(repeating: false, count: pieces * rounds)
        let (address, caller) = (Int(bitPattern: onCaller), pthread_self())
        for round in 0..<rounds {
            parallelPieces(pieces) { piece in
                UnsafeMutablePointer<Bool>(bitPattern: address)![round * pieces + piece] = pthread_equal(pthread_self(), caller) != 0
            }
        }
        let prefixes = (0..<rounds).filter { round in
            let ran = (0..<pieces).map { onCaller[round * pieces + $0] }
            return ran == ran.sorted { $0 && !$1 }
        }
        #expect(prefixes.count == rounds)
    }

    /// A region of two pieces on two workers is split where the two are expected to finish together: when the helper's
    /// items take twice as long as the caller's, the caller's share grows from 0.5 towards two thirds, and every index
    /// still runs once. Attempts go on until then (up to 30 s): while another test holds the pool the regions run
    /// inline and teach nothing.
    @Test func aSlowerHelperGetsTheSmallerPiece() {
        guard ComputeThreads.count >= 2 else { return }  // one core: no helper
        let caller = pthread_self()
        func spin(_ nanoseconds: Int) {
            let start = DispatchTime.now().uptimeNanoseconds
            while DispatchTime.now().uptimeNanoseconds - start < UInt64(nanoseconds) {}
        }
        var share = wc_pool_caller_share()
        let start = DispatchTime.now().uptimeNanoseconds
        while share < 0.6 && DispatchTime.now().uptimeNanoseconds - start < 30_000_000_000 {
            ComputeThreads.limited(to: 2) {
                parallelChunks(400, evenly: true) { range in
                    spin(range.count * (pthread_equal(pthread_self(), caller) != 0 ? 1_000 : 2_000))
                }
            }
            share = wc_pool_caller_share()
        }
        #expect(share >= 0.6 && share <= 0.8)
        for count in [2, 3, 7, 400] {
            let visits = Mutex([Int](repeating: 0, count: count))
            ComputeThreads.limited(to: 2) {
                parallelChunks(count, evenly: true) { range in visits.withLock { for i in range { $0[i] += 1 } } }
            }
            #expect(visits.withLock { $0 } == [Int](repeating: 1, count: count))
        }
        ComputeThreads.splitBySpeed(false)
        #expect(wc_pool_caller_share() == 0.5)
        ComputeThreads.splitBySpeed(true)
    }
}

/// Regions started inside a piece (inline, or with a worker that has no piece left) and from several threads at once
/// (one holds the pool, the others run inline), many in a row: every index of every region once, whoever took it.
@Suite struct ParallelRegionTests {
    /// A worker with no piece left to take joins a region started inside a piece still running: that piece then plans
    /// for two workers (`ComputeThreads.count`), and its chunks run on both threads, each once. An attempt counts where
    /// the helper ran the second piece and saw the caller finish the first: other tests may hold the pool (every piece
    /// then runs on one thread), the caller may take both pieces, or a stall may have paused the sharing.
    @Test func anIdleWorkerJoinsARegionStartedInsideAPiece() {
        guard ComputeThreads.count >= 2 else { return }  // one core: no worker to share
        var (idle, counted, joined) = (0, 0, false)
        let start = DispatchTime.now().uptimeNanoseconds
        while !joined && DispatchTime.now().uptimeNanoseconds - start < 30_000_000_000 {
            let chunks = Mutex<[Range<Int>]>([]), threads = Mutex<Set<ObjectIdentifier>>([])
            let pieceThreads = Mutex<Set<ObjectIdentifier>>([]), planned = Mutex<Int>(1)
            let firstDone = Mutex(false), firstDoneSeen = Mutex(false)
            parallelPieces(2) { piece in
                pieceThreads.withLock { _ = $0.insert(ObjectIdentifier(Thread.current)) }
                guard piece == 1 else { return firstDone.withLock { $0 = true } }
                let wait = DispatchTime.now().uptimeNanoseconds
                while ComputeThreads.count < 2 && DispatchTime.now().uptimeNanoseconds - wait < 20_000_000 {}
                planned.withLock { $0 = ComputeThreads.count }
                firstDoneSeen.withLock { $0 = firstDone.withLock { $0 } }
                parallelChunks(64) { range in
                    chunks.withLock { $0.append(range) }
                    threads.withLock { _ = $0.insert(ObjectIdentifier(Thread.current)) }
                    usleep(300)
                }
            }
            var covered = [Int](repeating: 0, count: 64)
            for range in chunks.withLock({ $0 }) { for i in range { covered[i] += 1 } }
            #expect(covered == [Int](repeating: 1, count: 64))
            // The caller finished the first piece while the helper ran the second: a worker was idle.
            guard pieceThreads.withLock({ $0.count }) == 2, firstDoneSeen.withLock({ $0 }) else { continue }
            idle += 1
            guard planned.withLock({ $0 }) == 2 else { continue }
            counted += 1
            joined = threads.withLock { $0.count } > 1
        }
        // Without the sharing, an idle worker is never counted (nor joins): 30 s of attempts, then this fails.
        #expect(idle == 0 || joined, "\(idle) attempts with an idle worker, \(counted) counted it, none joined")
    }

    @Test func nestedAndConcurrentRegionsCoverEveryIndex() async {
        let (outer, inner, rounds) = (5, 7, 200)
        let totals = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    let cells = UnsafeMutablePointer<Int>.allocate(capacity: outer * inner)
                    defer { cells.deallocate() }
                    cells.initialize(repeating: 0, count: outer * inner)
                    let address = Int(bitPattern: cells)
                    for _ in 0..<rounds {
                        parallelPieces(outer) { o in
                            parallelChunks(inner) { range in
                                let cells = UnsafeMutablePointer<Int>(bitPattern: address)!
                                for i in range { cells[o * inner + i] += 1 }
                            }
                        }
                    }
                    return (0..<outer * inner).filter { cells[$0] == rounds }.count
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(totals == [Int](repeating: outer * inner, count: 3))
    }
}
