import PGKeep

/// `archive_command = 'pgkeep --stanza=main archive-push %p'`
enum ArchivePushCommand {
    static func run(_ context: CommandContext) throws {
        guard let walPath = context.config.arguments.first else {
            throw PGKeepError(.optionRequired, "archive-push requires the WAL file path (%p)",
                              hint: "archive_command = 'pgkeep --stanza=<stanza> archive-push %p'")
        }
        let push = ArchivePush(storage: context.storage, layout: try context.layout(), compression: try context.compression,
                               compressLevel: try context.compressLevel, bufferSize: context.bufferSize, log: context.log)
        _ = try push.push(walPath: walPath, dataDirectory: context.config.string(.pg1Path))
    }
}
