import PGKeepCore

/// A PostgreSQL major version and the on-disk constants that identify it.
///
/// All version knowledge lives in the one table `PGVersion.known`. Code asks the table; it never
/// compares major numbers to decide a layout.
///
/// How a file is mapped to a version (docs/postgres-internals.md §3.3):
/// - pg_control: by the pair (`pg_control_version`, `catalog_version_no`). Majors 13 to 16 share
///   control version 1300, so the catalog version is what tells them apart.
/// - WAL: by `XLOG_PAGE_MAGIC`, the first two bytes of every WAL page.
public struct PGVersion: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The major version number (15 for PostgreSQL 15.x).
    public let major: Int
    /// `PG_CONTROL_VERSION` (`src/include/catalog/pg_control.h`).
    public let controlVersion: UInt32
    /// `CATALOG_VERSION_NO` of the GA release (`src/include/catalog/catversion.h`). Betas and
    /// release candidates may carry other values and are not recognised.
    public let catalogVersion: UInt32
    /// `XLOG_PAGE_MAGIC` (`src/include/access/xlog_internal.h`).
    public let walPageMagic: UInt16
    /// Byte offset of the CRC-32C in pg_control, which is also the number of bytes it covers
    /// (`offsetof(ControlFileData, crc)`): 288 up to PG17; 292 from PG18, which inserted
    /// `default_char_signedness`.
    public let controlCRCOffset: Int

    /// The versions pgkeep has been tested against and will back up: the majors PostgreSQL
    /// supports in December 2026. `make test` runs the integration tests on each (15 from Debian,
    /// 16 to 18 from the PyPI builds `scripts/deps.sh` unpacks; docs/postgres-versions.md).
    public static let supported: Set<Int> = [15, 16, 17, 18]

    /// The version table. Values for 15 to 18 were checked on real clusters of 15.20, 16.2, 17.10
    /// and 18.6 (`Fixtures/pg1*-pg_control`); 13 and 14 come from their releases' headers
    /// (docs/postgres-internals.md §3.3).
    public static let known: [PGVersion] = [
        PGVersion(major: 13, controlVersion: 1300, catalogVersion: 202007201, walPageMagic: 0xD106, controlCRCOffset: 288),
        PGVersion(major: 14, controlVersion: 1300, catalogVersion: 202107181, walPageMagic: 0xD10D, controlCRCOffset: 288),
        PGVersion(major: 15, controlVersion: 1300, catalogVersion: 202209061, walPageMagic: 0xD110, controlCRCOffset: 288),
        PGVersion(major: 16, controlVersion: 1300, catalogVersion: 202307071, walPageMagic: 0xD113, controlCRCOffset: 288),
        PGVersion(major: 17, controlVersion: 1700, catalogVersion: 202406281, walPageMagic: 0xD116, controlCRCOffset: 288),
        PGVersion(major: 18, controlVersion: 1800, catalogVersion: 202506291, walPageMagic: 0xD118, controlCRCOffset: 292),
    ]

    private init(major: Int, controlVersion: UInt32, catalogVersion: UInt32, walPageMagic: UInt16, controlCRCOffset: Int) {
        self.major = major
        self.controlVersion = controlVersion
        self.catalogVersion = catalogVersion
        self.walPageMagic = walPageMagic
        self.controlCRCOffset = controlCRCOffset
    }

    /// The table row for `major`, or nil if the table does not know it.
    public init?(major: Int) {
        guard let row = Self.known.first(where: { $0.major == major }) else { return nil }
        self = row
    }

    /// The version whose pg_control carries this (control version, catalog version) pair.
    public static func lookup(controlVersion: UInt32, catalogVersion: UInt32) -> PGVersion? {
        known.first { $0.controlVersion == controlVersion && $0.catalogVersion == catalogVersion }
    }

    /// The version whose WAL pages start with `magic`.
    public static func lookup(walPageMagic magic: UInt16) -> PGVersion? {
        known.first { $0.walPageMagic == magic }
    }

    /// Whether pgkeep backs up this version (`supported`).
    public var isSupported: Bool { Self.supported.contains(major) }

    /// The one refusal of a major pgkeep does not support, wherever it is found (pg_control,
    /// PG_VERSION, the server); `subject` says whose version it is ("the cluster in '/data'").
    public static func requireSupported(_ major: Int, of subject: String) throws(PGKeepError) {
        guard !supported.contains(major) else { return }
        throw PGKeepError(.dbVersion, "\(subject) is PostgreSQL \(major), which pgkeep does not support",
                          hint: "pgkeep supports PostgreSQL \(supported.sorted().map(String.init).joined(separator: ", "))")
    }

    /// `TABLESPACE_VERSION_DIRECTORY`, `"PG_" PG_MAJORVERSION "_" CATALOG_VERSION_NO`
    /// (`src/include/common/relpath.h`): the directory inside a tablespace location that holds this
    /// version's data, e.g. `PG_15_202209061`.
    public var tablespaceDirectoryName: String { "PG_\(major)_\(catalogVersion)" }

    /// The content of a `PG_VERSION` file for this major ("15").
    public var pgVersionFileText: String { String(major) }

    /// "PostgreSQL 15".
    public var description: String { "PostgreSQL \(major)" }

    /// Orders by major version.
    public static func < (lhs: PGVersion, rhs: PGVersion) -> Bool { lhs.major < rhs.major }
}
