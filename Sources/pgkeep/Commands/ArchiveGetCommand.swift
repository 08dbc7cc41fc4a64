import PGKeep

/// `restore_command = 'pgkeep --stanza=main archive-get %f "%p"'`
enum ArchiveGetCommand {
    static func run(_ context: CommandContext) throws {
        let arguments = context.config.arguments
        guard arguments.count == 2 else {
            throw PGKeepError(.optionRequired, "archive-get requires the WAL file name (%f) and the destination path (%p)",
                              hint: "restore_command = 'pgkeep --stanza=<stanza> archive-get %f \"%p\"'")
        }
        try ArchiveGet(storage: context.storage, layout: try context.layout(), bufferSize: context.bufferSize, log: context.log)
            .get(walFile: arguments[0], destination: arguments[1])
    }
}
