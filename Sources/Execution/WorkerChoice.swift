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
///
/// Only a pass that follows a pass of the same setting is timed: after a pass on one thread the helpers have gone to
/// sleep (the pool's spin is 200 µs) and the next split pass starts by waking them, a vCPU the hypervisor may have
/// halted. Timing that pass made every trial of two threads look as slow as one: SqueezeNet 1.1 64 px at batch 1
/// stayed on one thread at 252 µs a pass while two ran it in 172. So the warm-up alternates in pairs, and a trial is
/// two passes, the second one timed.
struct WorkerChoice {
    static let warmUp = 12, kept = 4, shortestInterval = 16, longestInterval = 1024
    static let margin = 0.97

    /// The last `kept` times of each setting: [0] all workers, [1] one.
    private var times: [[Double]] = [[], []]
    private var passes = 0
    private var interval = shortestInterval
    private var sinceTrial = 0
    /// The setting of the last pass (nil before the first).
    private var last: Bool?
    /// A trial's first, untimed pass has run.
    private var trialStarted = false
    /// The setting chosen (true: one worker) once warmed up.
    private(set) var one = false

    /// Whether the next pass runs on one worker.
    func next() -> Bool {
        if passes < Self.warmUp { return passes / 2 % 2 == 1 }
        return trialStarted || sinceTrial + 1 >= interval ? !one : one
    }

    /// Records the time of a pass run as `next` said.
    mutating func record(one single: Bool, seconds: Double) {
        let warm = passes >= Self.warmUp  // a pass after the warm-up
        let timed = last == single
        passes += 1
        last = single
        if timed {
            times[single ? 1 : 0].append(seconds)
            if times[single ? 1 : 0].count > Self.kept { times[single ? 1 : 0].removeFirst() }
        }
        let least = times.map { $0.min() ?? .infinity }
        let chosen = least[1] < Self.margin * least[0]
        guard warm else {
            if passes == Self.warmUp { one = chosen }
            return
        }
        guard single != one else { sinceTrial += 1; return }
        guard timed else { trialStarted = true; return }
        trialStarted = false
        sinceTrial = 0
        interval = chosen == one ? min(2 * interval, Self.longestInterval) : Self.shortestInterval
        one = chosen
    }
}
