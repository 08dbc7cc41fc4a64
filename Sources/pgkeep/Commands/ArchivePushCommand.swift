import PGKeepCore
import PGKeepEngine

/// `archive_command = 'pgkeep --stanza=main archive-push %p'`
enum ArchivePushCommand {
    static func run(_ context: CommandContext) throws {
        guard let walPath = context.config.arguments.first else {
            throw PGKeepError(.optionRequired, "archive-push requires the WAL file path (%p)",
                              hint: "archive_command = 'pgkeep --stanza=<stanza> archive-push %p'")
        }
        let layout = try context.layout()
        let (storage, compression, level, bufferSize) = (context.storage, try context.compression, try context.compressLevel, context.bufferSize)
        let makePush: @Sendable (Log) -> ArchivePush = { log in
            ArchivePush(storage: storage, layout: layout, compression: compression, compressLevel: level, bufferSize: bufferSize, log: log)
        }
        let queueMax = context.config.size(.archivePushQueueMax).map { UInt64($0) }
        guard context.config.bool(.archiveAsync) else {
            let push = makePush(context.log)
            guard let queueMax else {
                _ = try push.push(walPath: walPath, dataDirectory: context.config.string(.pg1Path))
                return
            }
            // The spool keeps a drop record the repository refused, but only one the operator set:
            // the default spool directory need not exist on a host that archives synchronously.
            let spool = context.config.isExplicit(.spoolPath)
                ? AsyncSpool(spoolPath: try context.required(.spoolPath), stanza: layout.stanza) : nil
            // A drop is success for PostgreSQL (exit 0); its error went to the server log.
            _ = try SynchronousQueueLimit(max: queueMax, spool: spool, log: context.log)
                .push(walPath: walPath, dataDirectory: context.config.string(.pg1Path), with: push)
            return
        }
        // PostgreSQL runs archive_command in the data directory: that is the queue to work through.
        let dataDirectory = Posix.absolute(context.config.string(.pg1Path) ?? ".")
        let settings = ArchivePushAsync.Settings(
            spool: AsyncSpool(spoolPath: try context.required(.spoolPath), stanza: layout.stanza),
            lockPath: context.config.string(.lockPath) ?? "/tmp/pgkeep", dataDirectory: dataDirectory,
            processMax: context.processMax, timeout: context.config.seconds(.archiveTimeout) ?? 60,
            logPath: context.config.string(.logPath), logLevelFile: context.fileLogLevel, queueMax: queueMax)
        try ArchivePushAsync(settings: settings, stanza: layout.stanza, log: context.log, makePush: makePush)
            .push(walPath: walPath)
    }
}
