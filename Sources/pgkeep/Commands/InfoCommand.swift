import PGKeepEngine

/// `pgkeep info [--stanza=main] [--output=json]`
enum InfoCommand {
    static func run(_ context: CommandContext) throws {
        let report = InfoReport(storage: context.storage, log: context.log, lockPath: context.config.string(.lockPath),
                                pgPath: context.config.string(.pg1Path))
        let stanzas = try report.collect(only: context.config.string(.stanza))
        if context.config.string(.output) == "json" {
            print(try report.json(stanzas))
        } else {
            print(report.text(stanzas), terminator: "")
        }
    }
}
