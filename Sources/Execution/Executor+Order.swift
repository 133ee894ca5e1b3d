import ModelGraph

/// The order the nodes run in.
extension Executor {
    /// Kahn's algorithm: each node waits for its not-yet-produced inputs, a node runs once its count reaches zero,
    /// and among ready nodes the one listed first in the file goes first (a heap), so a file already in order keeps
    /// its order. O((nodes + edges) log nodes), no recursion, whatever order the file lists its nodes in.
    public static func topologicallySorted(_ graph: Graph) throws -> [Node] {
        let nodes = graph.nodes
        var available = Set(graph.initializers.keys).union(graph.inputs.map(\.name)).union(graph.deferredWeights.keys)
        available.insert("")
        var producers: [String: Int] = [:]
        producers.reserveCapacity(nodes.count)
        for (i, node) in nodes.enumerated() {
            for o in node.outputs where !o.isEmpty {
                if producers.updateValue(i, forKey: o) != nil || available.contains(o) {
                    throw ExecutionError.invalidNode(node: node.displayName, op: node.opType,
                                                     detail: "value '\(o)' is already produced by another node, a graph input or an initializer")
                }
            }
        }
        var waiting = [Int](repeating: 0, count: nodes.count)
        var readers = [[Int]](repeating: [], count: nodes.count)
        for (i, node) in nodes.enumerated() {
            for input in node.inputs where !available.contains(input) {
                guard let p = producers[input] else { throw ExecutionError.missingValue(node: node.displayName, value: input) }
                waiting[i] += 1
                readers[p].append(i)
            }
        }
        var ready = MinHeap()
        for i in nodes.indices where waiting[i] == 0 { ready.push(i) }
        var order: [Node] = []
        order.reserveCapacity(nodes.count)
        while let i = ready.pop() {
            order.append(nodes[i])
            for r in readers[i] {
                waiting[r] -= 1
                if waiting[r] == 0 { ready.push(r) }
            }
        }
        if order.count != nodes.count {
            throw ExecutionError.cycle(nodes: nodes.indices.filter { waiting[$0] > 0 }.prefix(5).map { nodes[$0].displayName })
        }
        return order
    }
}

/// A binary min-heap of node indices.
struct MinHeap {
    private var items: [Int] = []

    mutating func push(_ value: Int) {
        items.append(value)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child] < items[parent] else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Int? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < items.count && items[left] < items[smallest] { smallest = left }
                if right < items.count && items[right] < items[smallest] { smallest = right }
                if smallest == parent { break }
                items.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return first
    }
}
