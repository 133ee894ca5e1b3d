import Compute
import Datasets
import Dispatch
import Execution
import Foundation
import ModelGraph

/// Fine-tunes `graph` on `data` (the training split) so that the result is never worse than `graph` without saying so:
///
/// 1. A seeded draw of `configuration.heldOut` training images is set aside and `graph` evaluated on it.
/// 2. The learning rate is the given one, or the range test's choice on a few hundred of the other images.
/// 3. Training runs with a linear warm-up; at every check-point the held-out top-1 is measured and the best state kept.
/// 4. A non-finite loss, a smoothed loss that stays at or above its start for `patience` steps, or a check-point more
///    than `maximumDrop` below the best seen is a divergence: training goes back to the last good check-point at a
///    lower rate, up to `backoffs` times, then stops.
/// 5. The best state seen is returned; when none beat `graph`, `graph` itself is returned and the report says so.
///
/// Parameters named in `masked` keep their zeros; `reassignment` re-assigns tied weights as `Trainer` does.
public func fineTune(_ graph: Graph, on data: ImageDataset, configuration: FineTuningConfiguration, masked: Set<String> = [],
                     reassignment: Reassignment? = nil, events: ((FineTuningEvent) -> Void)? = nil) throws -> FineTuningResult {
    try configuration.validate()
    let started = DispatchTime.now().uptimeNanoseconds
    func elapsed(since t: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9 }
    guard let input = graph.inputs.first?.name else { throw TrainingError.invalid("the model has no input") }
    guard data.count >= 2 else { throw TrainingError.invalid("fine-tuning needs at least 2 training images, got \(data.count)") }
    let classes = try Executor(graph: graph)(data.batch(0..<1)).shape.last ?? 0
    if let top = data.labels.max(), top >= classes {
        throw TrainingError.invalid("the model has \(classes) outputs but the training labels go up to \(top)")
    }

    // Held-out images: a seeded draw; the rest, in their order, is what trains.
    var order = Array(0..<data.count)
    var state = configuration.training.seed &+ 0x5851_F42D_4C95_7F2D
    for i in stride(from: order.count - 1, to: 0, by: -1) {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        order.swapAt(i, Int((state >> 11) % UInt64(i + 1)))
    }
    let holdCount = min(configuration.heldOut, data.count / 5)
    let heldOut = data.subset(Array(order[..<holdCount]).sorted())
    var trainRows = Array(order[holdCount...]).sorted()
    if let limit = configuration.trainingLimit { trainRows = Array(trainRows.prefix(limit)) }
    let train = data.subset(trainRows)

    func top1(_ g: Graph) throws -> Double {
        guard heldOut.count > 0 else { return 0 }
        let executor = try Executor(graph: g)
        var correct = 0
        for start in stride(from: 0, to: heldOut.count, by: 64) {
            let range = start..<min(heldOut.count, start + 64)
            let logits = try executor(heldOut.batch(range))
            let width = logits.shape.last ?? 1
            for (r, label) in zip(0..<range.count, heldOut.labels[range]) {
                let row = logits.scalars[r * width..<(r + 1) * width]
                if let m = row.indices.max(by: { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }), m - row.startIndex == label { correct += 1 }
            }
            events?(.evaluating(images: range.upperBound, of: heldOut.count))
        }
        return Double(correct) / Double(heldOut.count)
    }

    let before = try top1(graph)
    var training = configuration.training
    let perEpoch = min((train.count + training.batchSize - 1) / training.batchSize, training.stepsPerEpoch ?? .max)
    let total = perEpoch * training.epochs
    training.warmupSteps = Int((configuration.warmup * Double(total)).rounded())

    // The learning rate.
    var range: LearningRateRangeTest.Result?
    switch configuration.learningRate {
    case .fixed(let rate):
        training.learningRate = rate
    case .auto:
        let wanted = min(configuration.rangeTest.images, configuration.rangeTest.steps * training.batchSize)
        let probe = train.prefix(wanted)
        range = try configuration.rangeTest.run(graph, on: probe, configuration: training, masked: masked) { events?(.rangeTest(step: $0, of: $1)) }
        training.learningRate = range!.chosen
        events?(.rangeTestDone(range!))
    }

    let trainer = try Trainer(graph: graph, configuration: training, masked: masked, reassignment: reassignment)
    var good = trainer.state, goodStep = 0
    var best: (top1: Double, state: Trainer.State?, step: Int) = (before, nil, 0)
    var checkpoints: [FineTuningReport.Checkpoint] = []
    var backoffs: [FineTuningReport.Backoff] = []
    var stopped: String?
    var epochs: [EpochReport] = []
    // Divergence tracking: the mean loss of the first 10 steps (after a start or a back-off) is the reference.
    var firstLosses: [Float] = [], reference: Float?, smoothed: Float = 0, above = 0
    let checkpointEvery = max(1, perEpoch / configuration.checkpointsPerEpoch)

    training: for epoch in 1...training.epochs {
        let shuffled = trainer.shuffled(train.count)
        let epochStart = DispatchTime.now().uptimeNanoseconds
        var lossSum = 0.0, correct = 0, seen = 0, reassigned = 0
        var epochTop1: Double?
        var evaluating = 0.0  // check-point seconds, left out of the training throughput
        for b in 0..<perEpoch {
            let rows = Array(shuffled[(b * training.batchSize)..<min(train.count, (b + 1) * training.batchSize)])
            let (x, labels) = trainer.batch(train, rows: rows)
            let rate = trainer.rate(step: trainer.step, of: total)
            let (loss, right, moved) = try trainer.step(x, labels: labels, input: input, rate: rate)
            let step = trainer.step
            var divergence: String?
            if !loss.isFinite {
                divergence = "the loss became \(loss) at step \(step) (lr \(String(format: "%.3g", Double(rate))))"
            } else {
                lossSum += Double(loss) * Double(rows.count)
                correct += right
                seen += rows.count
                reassigned += moved
                if let reference {
                    smoothed = 0.9 * smoothed + 0.1 * loss
                    above = smoothed >= reference ? above + 1 : 0
                    if above >= configuration.patience {
                        divergence = String(format: "the loss stayed at or above its starting value %.3f for %d steps (lr %.3g)",
                                            Double(reference), above, Double(trainer.configuration.learningRate))
                    }
                } else {
                    firstLosses.append(loss)
                    if firstLosses.count == 10 {
                        reference = firstLosses.reduce(0, +) / 10
                        smoothed = reference!
                    }
                }
            }
            events?(.training(TrainingProgress(epoch: epoch, epochs: training.epochs, images: seen, total: min(train.count, perEpoch * training.batchSize),
                                               loss: lossSum / Double(max(1, seen)), accuracy: Double(correct) / Double(max(1, seen)),
                                               imagesPerSecond: Double(seen) / max(elapsed(since: epochStart) - evaluating, 1e-9))))
            if divergence == nil && ((b + 1) % checkpointEvery == 0 || b == perEpoch - 1) && heldOut.count > 0 {
                let evaluationStart = DispatchTime.now().uptimeNanoseconds
                let t = try top1(trainer.graph)
                evaluating += elapsed(since: evaluationStart)
                let checkpoint = FineTuningReport.Checkpoint(step: step, epoch: epoch, top1: t)
                checkpoints.append(checkpoint)
                events?(.checkpoint(checkpoint))
                if b == perEpoch - 1 { epochTop1 = t }
                // A drop beyond both the configured one and three standard errors of the best on these images.
                let noise = 3 * (best.top1 * (1 - best.top1) / Double(heldOut.count)).squareRoot()
                if t < best.top1 - max(configuration.maximumDrop, noise) {
                    divergence = String(format: "held-out top-1 fell to %.2f%% at step %d (best %.2f%%; lr %.3g)",
                                        100 * t, step, 100 * best.top1, Double(trainer.configuration.learningRate))
                } else {
                    good = trainer.state
                    goodStep = step
                    // Ties go to the later state: as good on the held-out images, and further along the schedule.
                    if t > best.top1 || (best.state != nil && t == best.top1) { best = (t, good, step) }
                }
            }
            if let divergence {
                guard backoffs.count < configuration.backoffs else {
                    stopped = divergence + (backoffs.isEmpty ? "" : " after \(backoffs.count) back-off\(backoffs.count == 1 ? "" : "s")")
                    epochs.append(report(epoch, lossSum, correct, seen, epochTop1, epochStart, evaluating, reassigned))
                    break training
                }
                let from = trainer.configuration.learningRate, to = from * configuration.backoffFactor
                try trainer.restore(good, learningRate: to)
                let backoff = FineTuningReport.Backoff(step: step, resumedFrom: goodStep, reason: divergence, fromRate: from, toRate: to)
                backoffs.append(backoff)
                events?(.backoff(backoff))
                firstLosses = []
                reference = nil
                above = 0
            }
        }
        epochs.append(report(epoch, lossSum, correct, seen, epochTop1, epochStart, evaluating, reassigned))
    }

    func report(_ epoch: Int, _ lossSum: Double, _ correct: Int, _ seen: Int, _ top1: Double?, _ start: UInt64, _ evaluating: Double,
                _ reassigned: Int) -> EpochReport {
        let seconds = elapsed(since: start)
        return EpochReport(epoch: epoch, loss: lossSum / Double(max(1, seen)), trainAccuracy: Double(correct) / Double(max(1, seen)),
                           testTop1: nil, heldOutTop1: top1, imagesPerSecond: Double(seen) / max(seconds - evaluating, 1e-9), seconds: seconds,
                           reassigned: reassignment == nil ? nil : reassigned)
    }

    // Without held-out images there is nothing to choose by: the last state is returned.
    let kept: Graph, improved: Bool
    if heldOut.count == 0 {
        (kept, improved, best.step) = (trainer.graph, true, trainer.step)
    } else if let state = best.state {
        (kept, improved) = (state.graph, true)
    } else {
        (kept, improved) = (graph, false)
    }
    let report = FineTuningReport(
        learningRate: training.learningRate, finalLearningRate: trainer.configuration.learningRate, learningRateFromRangeTest: range != nil,
        rangeTest: range, trainingImages: train.count, heldOutImages: heldOut.count, top1Before: before, top1After: best.top1,
        improved: improved, keptStep: best.step, diverged: !backoffs.isEmpty || stopped != nil, backoffs: backoffs, stopped: stopped,
        checkpoints: checkpoints, epochs: epochs, steps: trainer.step, seconds: elapsed(since: started))
    return FineTuningResult(graph: kept, report: report)
}
