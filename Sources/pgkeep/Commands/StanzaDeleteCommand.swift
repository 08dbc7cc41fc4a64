import SystemPackage
import PGKeepCore
import PGKeepEngine

/// `pgkeep --stanza=main stop && pgkeep --stanza=main stanza-delete [--pg1-path=DIR] [--force]`
enum StanzaDeleteCommand {
    static func run(_ context: CommandContext) throws {
        let dataDirectory = context.config.string(.pg1Path).map { FilePath(Posix.absolute($0)) }
        var options = StanzaDeleteOptions(dataDirectory: dataDirectory, force: context.config.bool(.force), lockPath: context.lockPath)
        options.lease = context.lease
        let layout = try context.layout()
        switch try StanzaDelete(storage: context.storage, host: context.host, layout: layout, options: options, log: context.log).run() {
        case .deleted: print("stanza '\(layout.stanza)' deleted")
        case .notFound: print("stanza '\(layout.stanza)' does not exist in the repository: nothing deleted")
        }
    }
}
