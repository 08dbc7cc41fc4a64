import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

/// Who owns restored files (Sources/PGKeep/Restore/Restore.swift, `Ownership`), on a pretend host
/// whose accounts the test chooses.
@Suite("Owners of restored files")
struct OwnershipTests {
    /// A host with users postgres (uid 26, primary group 260) and app (1000), groups postgres (26) and staff (50).
    static func host(isRoot: Bool = true, users: [String: UInt32] = ["postgres": 26, "app": 1000],
                     groups: [String: UInt32] = ["postgres": 26, "staff": 50]) -> Ownership.Accounts {
        Ownership.Accounts(isRoot: isRoot, userID: { users[$0] }, groupID: { groups[$0] },
                           primaryGroup: { users[$0] == nil ? nil : 260 })
    }

    /// A manifest whose every entry is owned by `user`/`group`, plus one file owned by app:staff.
    static func manifest(user: String?, group: String?) -> Manifest {
        var manifest = ManifestSample.make()
        for index in manifest.paths.indices { (manifest.paths[index].user, manifest.paths[index].group) = (user, group) }
        for index in manifest.links.indices { (manifest.links[index].user, manifest.links[index].group) = (user, group) }
        for index in manifest.files.indices { (manifest.files[index].user, manifest.files[index].group) = (user, group) }
        manifest.files[0].user = "app"
        manifest.files[0].group = "staff"
        return manifest
    }

    @Test("as root, owners known on the host are kept and nothing is said")
    func knownOwnersKept() throws {
        var warnings: [String] = []
        let ownership = try Ownership(manifest: Self.manifest(user: "postgres", group: "postgres"), accounts: Self.host()) { warnings.append($0) }
        #expect(ownership.ids(user: "postgres", group: "postgres")! == (26, 26))
        #expect(ownership.ids(user: "app", group: "staff")! == (1000, 50))
        #expect(warnings.isEmpty, "\(warnings)")
    }

    @Test("as root, an unknown user falls back to postgres and an unknown group to the postgres group, each said once by name; known names are kept")
    func unknownNamesFallBackWithOneWarningEach() throws {
        var warnings: [String] = []
        let ownership = try Ownership(manifest: Self.manifest(user: "gone", group: "vanished"), accounts: Self.host()) { warnings.append($0) }
        #expect(ownership.ids(user: "gone", group: "vanished")! == (26, 26))
        #expect(ownership.ids(user: "gone", group: "staff")! == (26, 50), "only the unknown name is replaced")
        #expect(ownership.ids(user: "app", group: "vanished")! == (1000, 26))
        #expect(warnings.count == 2, "\(warnings)")
        #expect(warnings[0].contains("user 'gone'") && warnings[0].contains("user 'postgres' (uid 26)"), "\(warnings)")
        #expect(warnings[1].contains("group 'vanished'") && warnings[1].contains("group 26"), "\(warnings)")
    }

    @Test("as root, entries recorded without owner names get postgres, said once; without a postgres group, the postgres user's primary group")
    func unnamedOwnersFallBack() throws {
        var warnings: [String] = []
        let ownership = try Ownership(manifest: Self.manifest(user: nil, group: nil), accounts: Self.host(groups: ["staff": 50])) { warnings.append($0) }
        #expect(ownership.ids(user: nil, group: nil)! == (26, 260))
        #expect(warnings.count == 1 && warnings[0].contains("without an owner user or group name") && warnings[0].contains("'postgres' (uid 26)"), "\(warnings)")
    }

    @Test("as root, a fallback with no postgres user on the host is refused with run-as-root naming the missing owner, never giving files to root")
    func noFallbackUserRefused() throws {
        var warnings: [String] = []
        #expect {
            _ = try Ownership(manifest: Self.manifest(user: "gone", group: "postgres"), accounts: Self.host(users: ["app": 1000])) { warnings.append($0) }
        } throws: { error in
            guard let error = error as? PGKeepError else { return false }
            return error.code == .runAsRoot && error.message.contains("user 'gone'") && error.message.contains("'postgres'")
                && error.hint?.contains("nothing was written") == true
        }
        // Known owners need no fallback, so the same host restores them.
        _ = try Ownership(manifest: Self.manifest(user: "app", group: "staff"), accounts: Self.host(users: ["app": 1000])) { warnings.append($0) }
        #expect(warnings.isEmpty)
    }

    @Test("not as root, nothing is looked up, said or changed")
    func notRootChangesNothing() throws {
        var looked = 0
        let accounts = Ownership.Accounts(isRoot: false, userID: { _ in looked += 1; return nil }, groupID: { _ in looked += 1; return nil },
                                          primaryGroup: { _ in nil })
        let ownership = try Ownership(manifest: Self.manifest(user: "gone", group: nil), accounts: accounts) { Issue.record("warned: \($0)") }
        #expect(ownership.ids(user: "gone", group: nil) == nil)
        #expect(looked == 0)
    }
}
