import PGKeepEngine

/// `pgkeep [--stanza=main] stop [--force]`: a stop file for the stanza (all stanzas without
/// --stanza) on this host; --force also terminates the backup or pusher running now.
enum StopCommand {
    static func run(_ context: CommandContext) throws {
        let stop = StanzaStop(lockPath: context.lockPath, stanza: context.config.string(.stanza), log: context.log)
        let outcome = try stop.stop(force: context.config.bool(.force))
        print(outcome.created ? "stopped \(outcome.stopFile.scope): stop file '\(outcome.stopFile.path)' created"
                              : "\(outcome.stopFile.scope) already stopped: stop file '\(outcome.stopFile.path)' exists")
        for holder in outcome.terminated {
            let still = outcome.stillRunning.contains(holder)
            print("terminated process \(holder.pid) (\(holder.kind.rawValue))" + (still ? ": still running, its lock is held" : ""))
        }
    }
}

/// `pgkeep [--stanza=main] start`: removes the stop file `stop` created.
enum StartCommand {
    static func run(_ context: CommandContext) throws {
        let stanza = context.config.string(.stanza)
        let removed = try StanzaStop(lockPath: context.lockPath, stanza: stanza, log: context.log).start()
        let scope = stanza.map { "stanza '\($0)'" } ?? "all stanzas"
        print(removed ? "started \(scope)" : "\(scope) was not stopped")
    }
}
