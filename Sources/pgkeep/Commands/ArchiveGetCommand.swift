import SystemPackage
import PGKeepCore
import PGKeepPostgres
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
        // PostgreSQL runs restore_command in the data directory it recovers; its pg_control says
        // which of the stanza's databases the WAL must come from (ArchiveGet.recovering).
        let dataDirectory = Posix.absolute(context.config.string(.pg1Path) ?? ".")
        let recovering = (try? PGControl.read(from: context.host, dataDirectory: FilePath(dataDirectory)).control)
            .map { (systemIdentifier: $0.systemIdentifier, version: $0.version.major) }
        let makeGet: @Sendable (Log) -> ArchiveGet = { log in
            ArchiveGet(storage: storage, layout: layout, bufferSize: bufferSize, log: log, recovering: recovering)
        }
        guard context.config.bool(.archiveAsync) else {
            try makeGet(context.log).get(walFile: arguments[0], destination: arguments[1])
            return
        }
        // PostgreSQL runs restore_command in the data directory it recovers.
        let settings = ArchiveGetAsync.Settings(
            spool: AsyncSpool(spoolPath: try context.required(.spoolPath), stanza: layout.stanza),
            lockPath: context.config.string(.lockPath) ?? "/tmp/pgkeep",
            dataDirectory: dataDirectory,
            queueMax: context.config.size(.archiveGetQueueMax) ?? 128 << 20, processMax: context.processMax,
            bufferSize: bufferSize, logPath: context.config.string(.logPath), logLevelFile: context.fileLogLevel)
        try ArchiveGetAsync(settings: settings, stanza: layout.stanza, log: context.log, makeGet: makeGet)
            .get(walFile: arguments[0], destination: arguments[1])
    }
}
