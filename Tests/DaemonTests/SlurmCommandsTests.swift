import Daemon
import Testing

@Suite("Slurm's commands, read")
struct SlurmCommandsTests {
    @Test("squeue's lines: one per array task, finished ones included; headers, blank lines and compressed pending ranges are kept apart")
    func parse() {
        let output = """
        JOBID|STATE|NODELIST|REASON
        7_0|NODE_FAIL|n1|NodeDown
        7_[3-4]|PENDING||Resources
        7_2|RUNNING|n1|None

        8|PENDING||Dependency
        garbage line
        """
        let tasks = SlurmCommands.parse(output)
        #expect(tasks.map(\.id) == ["7_0", "7_[3-4]", "7_2", "8"])
        #expect(tasks[0].state == "NODE_FAIL" && tasks[0].nodes == "n1" && tasks[0].reason == "NodeDown")
        #expect(tasks[3].nodes.isEmpty && tasks[3].reason == "Dependency")
        #expect(SlurmCommands.parse("").isEmpty)
    }

    @Test("array indices are written as ranges, in order, each once")
    func indices() {
        #expect(SlurmCommands.arrayIndices([0, 1, 2, 3]) == "0-3")
        #expect(SlurmCommands.arrayIndices([9, 7, 0, 1, 10, 3, 2, 7]) == "0-3,7,9-10")
        #expect(SlurmCommands.arrayIndices([5]) == "5")
        #expect(SlurmCommands.arrayIndices([]) == "")
    }
}
