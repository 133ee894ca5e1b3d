import Compute
@testable import Execution
import Testing
import _TestSupport

/// Single passes on one worker or all, whichever the timings favour (`WorkerChoice`), with the same outputs either way.
@Suite struct WorkerChoiceTests {
    /// Feeds `choice` passes whose times come from `time(one)`; returns whether each asked for one worker.
    static func run(_ choice: inout WorkerChoice, passes: Int, time: (Bool) -> Double) -> [Bool] {
        (0..<passes).map { _ in
            let setting = choice.next()
            choice.record(setting, seconds: time(setting == .one))
            return setting == .one
        }
    }

    @Test func warmUpAlternatesInRunsThenKeepsTheQuicker() {
        var choice = WorkerChoice()
        let asked = Self.run(&choice, passes: WorkerChoice().warmUp) { $0 ? 1.0 : 2.0 }
        #expect(asked == (0..<WorkerChoice().warmUp).map { $0 / WorkerChoice.run % 2 == 1 })
        #expect(choice.one)
        // All workers quicker, but by less than the margin asks of one worker: all.
        var close = WorkerChoice()
        _ = Self.run(&close, passes: WorkerChoice().warmUp) { $0 ? 0.99 : 1.0 }
        #expect(!close.one)
    }

    /// After the warm-up the other setting is tried every `interval` passes; confirmed, the interval doubles; when the
    /// host changes (one worker becomes the slower), the next trial flips the choice. Settings close in time (here 3.5%
    /// apart) are tried from every 16 passes; a much slower one only as often as `trialBudget` affords.
    @Test func trialsGrowApartAndFollowTheHost() {
        var choice = WorkerChoice()
        _ = Self.run(&choice, passes: WorkerChoice().warmUp) { $0 ? 1.0 : 1.035 }
        let first = Self.run(&choice, passes: 2 * WorkerChoice.shortestInterval) { $0 ? 1.0 : 1.035 }
        let trials = first.indices.filter { !first[$0] }
        // A run of passes, then 32 until the next trial.
        #expect(trials == Array(WorkerChoice.shortestInterval - 1 ..< WorkerChoice.shortestInterval - 1 + WorkerChoice.run))
        #expect(choice.one)
        // The host changes: all workers now take half the time. Within the next trials the choice flips.
        let later = Self.run(&choice, passes: 4 * WorkerChoice.shortestInterval + WorkerChoice.kept * 64) { $0 ? 1.0 : 0.5 }
        #expect(!choice.one)
        #expect(later.last == false)
    }

    /// A setting twice as slow as the chosen one costs a run's extra time per trial: trials come at most
    /// `trialBudget` of the time apart (run · (2 − 1) / 0.01 = 400 passes), and the host's change is still followed.
    @Test func slowSettingsAreTriedRarely() {
        var choice = WorkerChoice()
        _ = Self.run(&choice, passes: WorkerChoice().warmUp) { $0 ? 2.0 : 1.0 }
        #expect(!choice.one)
        let steady = Self.run(&choice, passes: 3_000) { $0 ? 2.0 : 1.0 }
        let extra = Double(steady.filter { $0 }.count)  // each pass on one worker costs one pass more
        #expect(extra <= WorkerChoice.trialBudget * 3_000 + Double(WorkerChoice.run))
        #expect(steady.prefix(399).allSatisfy { !$0 })
        // One worker becomes the quicker: the next trial (within the longest interval) flips the choice.
        _ = Self.run(&choice, passes: WorkerChoice.longestInterval + WorkerChoice.run) { $0 ? 0.4 : 1.0 }
        #expect(choice.one)
    }

    /// The first pass after a change of setting is not timed: split passes that follow passes on one thread start by
    /// waking the sleeping helpers, and timing them kept the choice on one thread however much quicker two were.
    @Test func theFirstPassAfterAChangeIsNotTimed() {
        var choice = WorkerChoice()
        var last: Bool?
        let asked = Self.run(&choice, passes: WorkerChoice().warmUp + 4 * WorkerChoice.shortestInterval) { single in
            defer { last = single }
            return single ? 1.0 : last == false ? 0.7 : 5.0  // split passes after one on one thread: slow
        }
        #expect(!choice.one)
        #expect(asked.suffix(WorkerChoice.shortestInterval).filter { $0 }.count <= WorkerChoice.run)
    }

    /// With blocks in bands a third setting: the warm-up takes each in runs, the quickest is chosen (one worker only
    /// when quicker by the margin), trials take the other two in turn, and a host that changes moves the choice.
    @Test func threeSettingsTakeTurnsAndTheQuickestIsKept() {
        var choice = WorkerChoice(settings: [.banded, .split, .one])
        let cost: [WorkerChoice.Setting: Double] = [.banded: 0.92, .split: 0.9, .one: 0.89]
        var asked: [WorkerChoice.Setting] = []
        for _ in 0..<choice.warmUp {
            let setting = choice.next()
            asked.append(setting)
            choice.record(setting, seconds: cost[setting]!)
        }
        let runs: [WorkerChoice.Setting] = [.banded, .split, .one, .banded, .split, .one, .banded, .split, .one]
        #expect(asked == runs.flatMap { Array(repeating: $0, count: WorkerChoice.run) })
        #expect(choice.chosen == .split)
        var tried: [WorkerChoice.Setting] = []
        for _ in 0..<4 * WorkerChoice.shortestInterval {
            let setting = choice.next()
            if setting != choice.chosen { tried.append(setting) }
            choice.record(setting, seconds: cost[setting]!)
        }
        #expect(tried.contains(.banded) && tried.contains(.one))
        #expect(choice.chosen == .split)
        // The host changes: the bands now take half the time.
        for _ in 0..<8 * WorkerChoice.shortestInterval + 64 * WorkerChoice.kept {
            let setting = choice.next()
            choice.record(setting, seconds: setting == .banded ? 0.5 : cost[setting]!)
        }
        #expect(choice.chosen == .banded)
    }

    /// Trials take the settings not chosen in turn, each interval afforded by the setting the next trial takes: the
    /// split setting, 1% slower than the bands, is tried from every 16 passes; one worker, twice as slow, seldom.
    @Test func eachTrialIsAffordedByItsSetting() {
        var choice = WorkerChoice(settings: [.banded, .split, .one])
        let cost: [WorkerChoice.Setting: Double] = [.banded: 1.0, .split: 1.01, .one: 2.0]
        for _ in 0..<choice.warmUp {
            let setting = choice.next()
            choice.record(setting, seconds: cost[setting]!)
        }
        var tried: [WorkerChoice.Setting] = []
        for _ in 0..<2_000 {
            let setting = choice.next()
            if setting != choice.chosen { tried.append(setting) }
            choice.record(setting, seconds: cost[setting]!)
        }
        #expect(choice.chosen == .banded)
        let single = tried.filter { $0 == .one }.count, split = tried.filter { $0 == .split }.count
        // One worker's passes cost one pass more each: within 1% of the time, give or take a trial.
        #expect(Double(single) <= WorkerChoice.trialBudget * 2_000 + Double(WorkerChoice.run))
        #expect(split >= 3 * WorkerChoice.run)
    }

    /// A small convolutional graph gives the same bits on one worker as on all (the kernels split outputs, never a
    /// sum), so the choice never changes what a pass returns; and the choice runs only where it is asked for.
    @Test func oneWorkerGivesTheSameOutputs() throws {
        let graph = BatchPassTests.graph()
        let x = Tensor(shape: [1, 3, 9, 9], scalars: ConvolutionTests.random(3 * 81, seed: 46))
        var options = Executor.Options()
        options.chooseWorkers = false
        let executor = try Executor(graph: graph, options: options)
        let all = try executor(x)
        let one = try ComputeThreads.limited(to: 1) { try executor(x) }
        #expect(one.scalars.map(\.bitPattern) == all.scalars.map(\.bitPattern))
        #expect(ComputeThreads.limited(to: 1) { ComputeThreads.count } == 1)
        let choosing = try Executor(graph: graph)
        for _ in 0..<2 * WorkerChoice().warmUp { #expect(try choosing(x).scalars.map(\.bitPattern) == all.scalars.map(\.bitPattern)) }
    }
}
