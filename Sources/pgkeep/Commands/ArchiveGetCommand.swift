import PGKeepCore
import PGKeepEngine

/// `restore_command = 'pgkeep --stanza=main archive-get %f "%p"'`
enum ArchiveGetCommand {
    static func run(_ context: CommandContext) throws {
        let arguments = context.config.arguments
        guard arguments.count == 2 else {
            throw PGKeepError(.optionRequired, "archive-get requires the WAL file name (%f) and the destination path (%p)",
                              hint: "restore_command = 'pgkeep --stanza=<stanza> archive-get %f \"%p\"'")
        }
        let layout = try context.layout()
        let (storage, bufferSize) = (context.storage, context.bufferSize)
        let makeGet: @Sendable (Log) -> ArchiveGet = { log in
            ArchiveGet(storage: storage, layout: layout, bufferSize: bufferSize, log: log)
        }
        guard context.config.bool(.archiveAsync) else {
            try makeGet(context.log).get(walFile: arguments[0], destination: arguments[1])
            return
        }
        // PostgreSQL runs restore_command in the data directory it recovers.
        let settings = ArchiveGetAsync.Settings(
            spool: AsyncSpool(spoolPath: try context.required(.spoolPath), stanza: layout.stanza),
            lockPath: context.config.string(.lockPath) ?? "/tmp/pgkeep",
            dataDirectory: Posix.absolute(context.config.string(.pg1Path) ?? "."),
            queueMax: context.config.size(.archiveGetQueueMax) ?? 128 << 20, processMax: context.processMax,
            bufferSize: bufferSize, logPath: context.config.string(.logPath), logLevelFile: context.fileLogLevel)
        try ArchiveGetAsync(settings: settings, stanza: layout.stanza, log: context.log, makeGet: makeGet)
            .get(walFile: arguments[0], destination: arguments[1])
    }
}
