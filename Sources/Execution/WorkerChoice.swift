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
/// `longestInterval`) each time a trial confirms the choice and starts again at `shortestInterval` when it flips; a
/// trial also waits for as many passes as `trialBudget` affords for the setting it takes.
///
/// Only a pass that follows a pass of the same setting is timed: after a pass on one thread the helpers have gone to
/// sleep (the pool's spin is 200 µs) and the next split pass starts by waking them, a vCPU the hypervisor may have
/// halted. Timing that pass made every trial of two threads look as slow as one: SqueezeNet 1.1 64 px at batch 1
/// stayed on one thread at 252 µs a pass while two ran it in 172. So the warm-up alternates in runs of `run` passes,
/// and a trial is `run` passes, all but the first timed. With runs of two (the second pass timed), the second pass
/// was often still slow on the core just woken, and the choice stayed on one thread for whole runs: SqueezeNet 1.1
/// 64 px at batch 1 on two threads, fresh processes of 2 s alternated, least µs a pass: 597–606 in four runs of five
/// (one thread's rate), against 363–369 in three of five with runs of four (onnxruntime 338–342 in the same minutes).
///
/// Where the plan has blocks that run in bands of rows (`Executor.bandedBlocks`), splitting them so is a third setting,
/// judged the same way: in the host's slow state the bands ran MobileNetV2 224 px at batch 1 8–14% faster (each core
/// keeps its rows from the expansion through the projection), with it fast 1–3% slower (the rows under both halves'
/// windows are expanded twice).
struct WorkerChoice {
    /// How a single pass runs: each node split over the workers, the same with blocks in bands, or on one thread.
    enum Setting: Sendable, Equatable { case split, banded, one }

    static let warmUpRuns = 3, run = 4, kept = 4, shortestInterval = 16, longestInterval = 1024
    static let margin = 0.97
    /// The share of the passes' time that trials of a setting slower than the chosen one may cost: after the warm-up
    /// and each trial, the next trial waits at least the passes over which its extra time is this share. A trial of one
    /// thread where it takes 1.9 times as long as two (ResNet-18 224 px at batch 1) costs 3.6 passes' time: the next
    /// trial comes 360 passes later, not 16 (with trials every 16, 32, 64 … passes, eight of the 90 passes of a 2 s run
    /// could be trials); close settings (small models, where one thread can win) are still tried every 16 passes at
    /// first. With the benchmark's warm-up past the choice's (`Executor.choosingWorkers`), two threads, batch 1, 2 s
    /// runs of the two builds alternated, images/s: ResNet-18 224 px 44.5, 46.6, 46.7 → 53.7, 51.7, 47.0 (least batch
    /// unchanged, 17.1–18.0 ms); MobileNetV2 224 px 164, 132, 165 → 194, 163, 144.
    static let trialBudget = 0.01

    /// The settings judged; the first is preferred on a tie, and `.one` must be quicker by `margin`.
    let settings: [Setting]
    /// Passes alternating in runs of `run` before the first choice: `warmUpRuns` runs of each setting.
    var warmUp: Int { Self.run * Self.warmUpRuns * settings.count }
    /// The last `kept` times of each setting, by its index in `settings`.
    private var times: [[Double]]
    private var passes = 0
    private var interval = shortestInterval
    /// The passes before the next trial that `trialBudget` affords for its setting (`affordableInterval`); the next
    /// trial waits for the longer of this and `interval`.
    private var afforded = 0
    private var sinceTrial = 0
    /// Trials so far (they take the settings not chosen in turn).
    private var trials = 0
    /// The setting of the last pass (nil before the first).
    private var last: Setting?
    /// Passes of the current trial so far (a trial is `run` passes of one setting not chosen).
    private var trialPasses = 0
    /// The setting chosen once warmed up.
    private(set) var chosen: Setting

    init(settings: [Setting] = [.split, .one]) {
        precondition(!settings.isEmpty, "WorkerChoice: no settings")
        self.settings = settings
        times = Array(repeating: [], count: settings.count)
        chosen = settings[0]
    }

    /// Whether the setting chosen is one worker.
    var one: Bool { chosen == .one }

    /// The setting of the next pass.
    func next() -> Setting {
        if passes < warmUp { return settings[passes / Self.run % settings.count] }
        guard trialPasses > 0 || sinceTrial + 1 >= max(interval, afforded) else { return chosen }
        return trialSetting
    }

    /// The setting the next trial takes: the settings not chosen in turn (the chosen one when there is no other).
    private var trialSetting: Setting {
        let others = settings.filter { $0 != chosen }
        return others.isEmpty ? chosen : others[trials % others.count]
    }

    /// The setting whose last passes were the quickest (`.one` by `margin`).
    private var quickest: Setting {
        var best = 0, bestTime = Double.infinity
        for (i, t) in times.enumerated() {
            let time = (t.min() ?? .infinity) / (settings[i] == .one ? Self.margin : 1)
            if time < bestTime { (best, bestTime) = (i, time) }
        }
        return settings[best]
    }

    /// Records the time of a pass run as `next` said.
    mutating func record(_ setting: Setting, seconds: Double) {
        let warm = passes >= warmUp  // a pass after the warm-up
        let timed = last == setting
        passes += 1
        last = setting
        if timed, let i = settings.firstIndex(of: setting) {
            times[i].append(seconds)
            if times[i].count > Self.kept { times[i].removeFirst() }
        }
        guard warm else {
            if passes == warmUp {
                chosen = quickest
                afforded = affordableInterval
            }
            return
        }
        guard setting != chosen else { sinceTrial += 1; return }
        trialPasses += 1
        guard trialPasses == Self.run else { return }
        trialPasses = 0
        sinceTrial = 0
        trials += 1
        let best = quickest
        interval = best == chosen ? min(2 * interval, Self.longestInterval) : Self.shortestInterval
        chosen = best
        afforded = affordableInterval
    }

    /// Whether the warm-up has begun and not ended (a caller timing steady passes waits for it).
    var warmingUp: Bool { passes > 0 && passes < warmUp }

    /// The passes before the next trial over which it costs `trialBudget` of the time (at most `longestInterval`): the
    /// trials take the settings not chosen in turn, so with three settings one thread's trials, the slow ones, come
    /// seldom while the two split settings, close in time, are still compared often.
    private var affordableInterval: Int {
        guard trialSetting != chosen, let mine = settings.firstIndex(of: chosen), let chosenTime = times[mine].min(),
              chosenTime > 0, let next = settings.firstIndex(of: trialSetting), let nextTime = times[next].min()
        else { return 0 }
        let extra = Double(Self.run) * max(0, nextTime / chosenTime - 1) / Self.trialBudget
        return Int(min(extra, Double(Self.longestInterval)).rounded(.up))
    }
}
