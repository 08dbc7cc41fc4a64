import PGKeepCore
import PGKeepEngine

/// `pgkeep info [--stanza=main [--set=LABEL]] [--output=json]`
enum InfoCommand {
    static func run(_ context: CommandContext) throws {
        if context.config.string(.set) != nil, context.config.string(.stanza) == nil {
            throw PGKeepError(.optionInvalid, "info --set needs --stanza: a backup label belongs to one stanza",
                              hint: "add --stanza=<name>")
        }
        let report = InfoReport(storage: context.storage, log: context.log, lockPath: context.config.string(.lockPath),
                                pgPath: context.config.string(.pg1Path), set: try context.setLabel())
        let stanzas = try report.collect(only: context.config.string(.stanza))
        if context.config.string(.output) == "json" {
            print(try report.json(stanzas))
        } else {
            print(report.text(stanzas), terminator: "")
        }
    }
}
