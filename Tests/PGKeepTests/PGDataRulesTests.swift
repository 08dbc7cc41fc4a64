import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Suite("PGDATA backup rules")
struct PGDataRulesTests {
    private let rules = PGDataRules(version: PGVersion(major: 15)!)
    private let tablespaceDB = "pg_tblspc/16384/PG_15_202209061/5"

    private func rule(_ path: String, directory: Bool = false, siblings: Set<String> = []) -> PGDataEntryRule {
        rules.rule(forRelativePath: path, isDirectory: directory, siblingNames: siblings)
    }

    @Test("copies ordinary cluster files and directories", arguments: [
        "PG_VERSION", "postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "current_logfiles",
        "base/5/16385", "base/5/16385_fsm", "base/5/16385_vm", "base/5/16385.1", "base/5/PG_VERSION",
        "base/5/pg_filenode.map", "global/1262", "global/pg_filenode.map", "pg_xact/0000",
        "pg_multixact/offsets/0000", "log/postgresql-Mon.log", "backup_label.old.keep",
        "pg_tblspc/16384/PG_15_202209061/5/16385", "pg_logical/replorigin_checkpoint",
        "base/5/t3", "base/5/t3_", "base/5/16385_foo", "base/5/12345678901",
    ])
    func copies(path: String) {
        #expect(rule(path) == .copy)
    }

    @Test("copies the directory skeleton", arguments: [
        "base", "base/5", "global", "pg_xact", "pg_multixact/members", "pg_logical/snapshots", "pg_tblspc",
        "pg_tblspc/16384", "pg_tblspc/16384/PG_15_202209061", "pg_tblspc/16384/PG_15_202209061/5", "pg_twophase",
        "pg_commit_ts", "pg_stat",
    ])
    func copiesDirectories(path: String) {
        #expect(rule(path, directory: true) == .copy)
    }

    @Test("skips pgsql_tmp files and directories at any depth", arguments: [
        "base/pgsql_tmp", "base/pgsql_tmp/pgsql_tmp1234.0", "pgsql_tmp_anything", "base/5/pgsql_tmp42",
        "pg_tblspc/16384/PG_15_202209061/pgsql_tmp", "pg_tblspc/16384/PG_15_202209061/pgsql_tmp/pgsql_tmp9.1",
    ])
    func skipsTemporaryFiles(path: String) {
        #expect(rule(path) == .skip)
        #expect(rule(path, directory: true) == .skip)
    }

    @Test("skips the exact names pg_basebackup excludes, in any directory, but not longer names", arguments: [
        "postgresql.auto.conf.tmp", "current_logfiles.tmp", "backup_label", "tablespace_map", "backup_manifest",
        "postmaster.pid", "postmaster.opts", ".DS_Store", "base/.DS_Store",
    ])
    func skipsExactNames(path: String) {
        #expect(rule(path) == .skip)
    }

    @Test("skips pgBackRest's extra files in the root only", arguments: [
        "recovery.signal", "standby.signal", "recovery.conf", "recovery.done", "backup_label.old", "backup_manifest.tmp",
    ])
    func skipsRootExtras(name: String) {
        #expect(rule(name) == .skip)
        #expect(rule("conf.d/" + name) == .copy)
    }

    @Test("skips pg_internal.init and its temporary files", arguments: [
        "global/pg_internal.init", "base/5/pg_internal.init", "base/5/pg_internal.init.12345",
        "pg_tblspc/16384/PG_15_202209061/5/pg_internal.init",
    ])
    func skipsRelcacheInit(path: String) {
        #expect(rule(path) == .skip)
    }

    @Test("skips every fork of an unlogged relation except _init, in base and tablespace databases")
    func unloggedForks() {
        let siblings: Set<String> = ["16390", "16390_init", "16390_fsm", "16390_vm", "16390.1", "16385", "16385_vm", "PG_VERSION"]
        for directory in ["base/5", tablespaceDB] {
            for name in ["16390", "16390_fsm", "16390_vm", "16390.1", "16390_fsm.2"] {
                #expect(rule("\(directory)/\(name)", siblings: siblings) == .skip, "\(directory)/\(name)")
            }
            #expect(rule("\(directory)/16390_init", siblings: siblings) == .copy)
            #expect(rule("\(directory)/16390_init.1", siblings: siblings) == .copy)
            #expect(rule("\(directory)/16385", siblings: siblings) == .copy)
            #expect(rule("\(directory)/16385_vm", siblings: siblings) == .copy)
        }
        // Outside database directories the rule does not apply.
        #expect(rule("global/16390", siblings: siblings) == .copy)
        #expect(rule("pg_tblspc/16384/PG_15_202209061/16390", siblings: siblings) == .copy)
    }

    @Test("recognises unlogged forks by the reinit.c file-name grammar")
    func unloggedGrammar() {
        let siblings: Set<String> = ["16390_init", "1_init"]
        #expect(PGDataRules.isUnloggedFork(fileName: "16390", siblingNames: siblings))
        #expect(PGDataRules.isUnloggedFork(fileName: "1.7", siblingNames: siblings))
        #expect(!PGDataRules.isUnloggedFork(fileName: "16390_init", siblingNames: siblings))
        #expect(!PGDataRules.isUnloggedFork(fileName: "16390_main", siblingNames: siblings))
        #expect(!PGDataRules.isUnloggedFork(fileName: "16390.", siblingNames: siblings))
        #expect(!PGDataRules.isUnloggedFork(fileName: "16390_vmx", siblingNames: siblings))
        #expect(!PGDataRules.isUnloggedFork(fileName: "16391", siblingNames: siblings))
        #expect(PGDataRules.RelationFileName("16390_fsm.12")?.segment == 12)
        #expect(PGDataRules.RelationFileName("16390_fsm.12")?.fork == .fsm)
        #expect(PGDataRules.RelationFileName("16390")?.fork == .main)
        #expect(PGDataRules.RelationFileName("12345678901") == nil)  // more than OIDCHARS digits
    }

    @Test("skips temporary relations in database directories", arguments: [
        "t3_16400", "t3_16400_fsm", "t3_16400_vm", "t3_16400_init", "t12_16400.1", "t3_16400_vm.2",
    ])
    func temporaryRelations(name: String) {
        #expect(PGDataRules.isTemporaryRelation(fileName: name))
        #expect(rule("base/5/" + name) == .skip)
        #expect(rule("\(tablespaceDB)/\(name)") == .skip)
        #expect(rule("global/" + name) == .copy)
    }

    @Test("does not mistake other names for temporary relations", arguments: [
        "t", "t_16400", "t3_", "t3", "t3_16400_", "t3_16400_main", "t3_16400.", "tx_1", "t3_16400_fsm.x", "16400",
    ])
    func notTemporary(name: String) {
        #expect(!PGDataRules.isTemporaryRelation(fileName: name))
    }

    @Test("copies global/pg_control last")
    func pgControlLast() {
        #expect(rule("global/pg_control") == .copyLast)
        #expect(rule("./global/pg_control") == .copyLast)
        #expect(rule("base/5/pg_control") == .copy)
    }

    @Test("keeps the excluded-content directories empty", arguments: [
        "pg_stat_tmp", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_subtrans",
    ])
    func emptiedDirectories(name: String) {
        #expect(rule(name, directory: true) == .keepEmptyDirectory)
        #expect(rule(name + "/somefile") == .skip)
        #expect(rule(name + "/slot1", directory: true) == .skip)
        #expect(rule(name + "/slot1/state") == .skip)
        #expect(PGDataRules.emptiedDirectories.contains(name))
    }

    @Test("keeps pg_wal and pg_wal/archive_status empty and synthesizes archive_status")
    func walDirectory() {
        #expect(rule("pg_wal", directory: true) == .keepEmptyDirectory)
        #expect(rule("pg_wal/archive_status", directory: true) == .keepEmptyDirectory)
        #expect(rule("pg_wal/000000010000000000000005") == .skip)
        #expect(rule("pg_wal/00000002.history") == .skip)
        #expect(rule("pg_wal/archive_status/000000010000000000000005.done") == .skip)
        #expect(rule("pg_wal/summaries", directory: true) == .skip)  // PG17+ only
        #expect(rules.synthesizedDirectories(inside: "pg_wal") == ["pg_wal/archive_status"])
        #expect(rules.synthesizedDirectories(inside: "base").isEmpty)
        let pg17 = PGDataRules(version: PGVersion(major: 17)!)
        #expect(pg17.rule(forRelativePath: "pg_wal/summaries", isDirectory: true, siblingNames: []) == .keepEmptyDirectory)
        #expect(pg17.synthesizedDirectories(inside: "pg_wal") == ["pg_wal/archive_status", "pg_wal/summaries"])
    }

    @Test("skips other versions' directories inside a tablespace")
    func tablespaceVersionDirectory() {
        #expect(rule("pg_tblspc/16384/PG_14_202107181", directory: true) == .skip)
        #expect(rule("pg_tblspc/16384/PG_14_202107181/5/16385") == .skip)
        #expect(rule("pg_tblspc/16384/PG_15_202209061", directory: true) == .copy)
    }

    @Test("recognises database directories in base and in this version's tablespace directory")
    func databaseDirectories() {
        #expect(rules.isDatabaseDirectory("base/1"))
        #expect(rules.isDatabaseDirectory("base/16384"))
        #expect(rules.isDatabaseDirectory(tablespaceDB))
        #expect(rules.isDatabaseDirectory("./base/5"))
        #expect(!rules.isDatabaseDirectory("base"))
        #expect(!rules.isDatabaseDirectory("global"))
        #expect(!rules.isDatabaseDirectory("base/5a"))
        #expect(!rules.isDatabaseDirectory("base/pgsql_tmp"))
        #expect(!rules.isDatabaseDirectory("pg_tblspc/16384/PG_14_202107181/5"))
        #expect(!rules.isDatabaseDirectory("pg_tblspc/16384/PG_15_202209061"))
        #expect(!rules.isDatabaseDirectory("other/base/5"))
    }

    @Test("copies the data directory itself")
    func root() {
        #expect(rule("", directory: true) == .copy)
        #expect(rule(".", directory: true) == .copy)
    }
}
