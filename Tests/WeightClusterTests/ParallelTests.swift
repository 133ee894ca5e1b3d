import Compute
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
}
