import Synchronization

/// Whether a single pass (batch 1) runs faster with each node split over the workers or on the calling thread alone,
/// on this host as it is now, judged by timing both.
///
/// Splitting a node costs a hand-over between cores each time: about 0.1 µs a cache-line round trip when the two
/// vCPUs of this VM share a last-level cache, 0.4–0.55 µs when the hypervisor has placed them apart (both measured by a
/// ping-pong between two threads). In the second state, which lasts minutes, MobileNetV2 64 px at batch 1 ran 1,800
/// images/s on two threads against 2,140 on one, and onnxruntime's two threads fell to its one thread's rate too
/// (about 2,150, against 3,800 in the first state). So the first `warmUp` passes alternate between the two, and after
/// that every `interval`-th pass tries the setting not chosen; each setting is judged by the least time of its last
/// `kept` passes, and one thread is chosen only when it is the quicker by `margin`. The interval doubles (to at most
/// `longestInterval`) each time a trial confirms the choice, and starts again at `shortestInterval` when it flips.
struct WorkerChoice {
    static let warmUp = 8, kept = 4, shortestInterval = 16, longestInterval = 1024
    static let margin = 0.97

    /// The last `kept` times of each setting: [0] all workers, [1] one.
    private var times: [[Double]] = [[], []]
    private var passes = 0
    private var interval = shortestInterval
    private var sinceTrial = 0
    /// The setting chosen (true: one worker) once warmed up.
    private(set) var one = false

    /// Whether the next pass runs on one worker.
    mutating func next() -> Bool {
        if passes < Self.warmUp { return passes % 2 == 1 }
        return sinceTrial + 1 >= interval ? !one : one
    }

    /// Records the time of a pass run as `next` said.
    mutating func record(one single: Bool, seconds: Double) {
        let warm = passes >= Self.warmUp  // a pass after the warm-up
        let trial = warm && single != one
        passes += 1
        times[single ? 1 : 0].append(seconds)
        if times[single ? 1 : 0].count > Self.kept { times[single ? 1 : 0].removeFirst() }
        let least = times.map { $0.min() ?? .infinity }
        let chosen = least[1] < Self.margin * least[0]
        guard warm else {
            if passes == Self.warmUp { one = chosen }
            return
        }
        sinceTrial = trial ? 0 : sinceTrial + 1
        guard trial else { return }
        interval = chosen == one ? min(2 * interval, Self.longestInterval) : Self.shortestInterval
        one = chosen
    }
}
