import PGKeepCore
import PGKeepPostgres

/// The manifest's JSON, written and read as a stream (repo-layout.md §3.3): a manifest lists every
/// file of the cluster, and building a `JSONEncoder`/`JSONDecoder` tree of it cost several KiB per
/// file. The bytes are those `JSONEncoder` (`[.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]`)
/// writes for the `Codable` conformance, so manifests on disk are unchanged
/// (`ManifestJSONTests` proves it byte for byte), except that `readerFeatures` is written with
/// every feature the entries use added (repo-layout.md §3.9), which the stored list may lack.
///
/// Keys are written in byte order, as `.sortedKeys` sorts them; optional values that are nil are
/// left out, as the synthesised `encodeIfPresent` does. Reading ignores unknown keys and takes
/// `null` as absent, as `JSONDecoder` does.
extension Manifest {
    /// Writes the JSON body. `files` replaces `self.files` when given (the partial manifest writes
    /// the entries stored so far without collecting them into an array).
    func writeJSON(to w: inout JSONStreamWriter) throws {
        try writeJSON(to: &w, files: files)
    }

    /// Writes the manifest and its `.copy` (`SealedFile.save`), with `files` as its file entries in
    /// place of `self.files`, streamed from the sequence.
    ///
    /// `@inlinable`, like `writeJSON(to:files:)`: the sequence is the caller's type (a lazy filter
    /// over the backup's table, in `PGKeepEngine`), which this module cannot specialize for. Inlined
    /// into the caller, the loop over it is compiled for its type and hands each entry to the
    /// non-generic writer; left here, every element would go through the runtime's generic
    /// metadata (measured: +25% CPU on a backup of 21 000 small files).
    @inlinable
    package func save<Files: Sequence<FileEntry>>(files: Files, to path: StoragePath, in storage: Storage) throws {
        try save(eachFile: { body in for file in files { try body(file) } }, to: path, in: storage)
    }

    @inlinable
    package func writeJSON<Files: Sequence<FileEntry>>(to w: inout JSONStreamWriter, files: Files) throws {
        try writeJSON(to: &w, eachFile: { body in for file in files { try body(file) } })
    }

    /// `save(files:to:in:)` with the entries given by `eachFile`, which calls its argument once
    /// per entry, in order.
    @usableFromInline
    package func save(eachFile: FileEntries, to path: StoragePath, in storage: Storage) throws {
        for target in [path, try SealedFile.copyPath(of: path)] {
            try SealedFile.write(to: target, in: storage) { try writeJSON(to: &$0, eachFile: eachFile) }
        }
    }

    /// File entries handed over one at a time: `eachFile(body)` calls `body` for every entry.
    @usableFromInline
    package typealias FileEntries = (_ body: (FileEntry) throws -> Void) throws -> Void

    @usableFromInline
    package func writeJSON(to w: inout JSONStreamWriter, eachFile: FileEntries) throws {
        try w.beginObject()
        if let annotation {
            try w.key("annotation")
            try w.beginObject()
            for key in annotation.keys.sorted() { try w.key(named: key); try w.value(annotation[key]!) }
            try w.endObject()
        }
        try w.key("backup"); try backup.writeJSON(to: &w)
        if let bundles { try Self.writeList("bundles", bundles, to: &w) { try $0.writeJSON(to: &$1) } }
        try w.key("database"); try database.writeJSON(to: &w)
        try Self.writeList("databases", databases, to: &w) { try $0.writeJSON(to: &$1) }
        var used = Set(readerFeatures ?? [])
        if targets.contains(where: { $0.kind == .link }) { used.insert(RepositoryFeature.linkTargets.rawValue) }
        try w.key("files")
        try w.beginArray()
        try eachFile { file in
            try w.element()
            try file.writeJSON(to: &w)
            if file.blockSize != nil { used.insert(RepositoryFeature.blockIncremental.rawValue) }
            if file.bundle != nil { used.insert(RepositoryFeature.bundles.rawValue) }
        }
        try w.endArray()
        try w.key("format"); try w.value(format)
        try Self.writeList("links", links, to: &w) { try $0.writeJSON(to: &$1) }
        try w.key("options"); try options.writeJSON(to: &w)
        try Self.writeList("paths", paths, to: &w) { try $0.writeJSON(to: &$1) }
        // After `files` in key order, so the features the streamed entries use are known by now.
        try writeFeatures("readerFeatures", RepositoryFeature.recorded(used), to: &w)
        try Self.writeList("targets", targets, to: &w) { try $0.writeJSON(to: &$1) }
        try writeFeatures("writerFeatures", writerFeatures, to: &w)
        try w.endObject()
    }

    /// `key` and a JSON array of `elements`, each written by `element`.
    private static func writeList<Elements: Sequence>(_ key: StaticString, _ elements: Elements, to w: inout JSONStreamWriter,
                                                      _ element: (Elements.Element, inout JSONStreamWriter) throws -> Void) throws {
        try w.key(key)
        try w.beginArray()
        for item in elements {
            try w.element()
            try element(item, &w)
        }
        try w.endArray()
    }

    private func writeFeatures(_ key: StaticString, _ features: [String]?, to w: inout JSONStreamWriter) throws {
        guard let features else { return }
        try w.key(key)
        try w.beginArray()
        for feature in features { try w.element(); try w.value(feature) }
        try w.endArray()
    }

    /// Reads a manifest body. Strings that repeat in every entry (owner names, references) are
    /// shared, so a large manifest keeps one copy of each.
    static func readJSON(from r: inout JSONStreamReader) throws -> Manifest {
        var files: [FileEntry] = []
        var manifest = try readJSON(from: &r) { files.append($0) }
        manifest.files = files
        return manifest
    }

    /// Reads a manifest body, handing each file entry to `file` as it is read instead of keeping
    /// it: the manifest returned has no files. A reader that keeps the entries in its own compact
    /// form (`PriorManifest`) never holds the `FileEntry` array.
    package static func readJSON(from r: inout JSONStreamReader, file: (FileEntry) throws -> Void) throws -> Manifest {
        var format: Int?, backup: Backup?, database: Database?, options: Options?
        var databases: [DatabaseEntry]?, targets: [Target]?, paths: [PathEntry]?, links: [LinkEntry]?, files: Bool?
        var bundles: [BundleEntry]?, readerFeatures: [String]?, writerFeatures: [String]?
        var annotation: [String: String]?
        var strings = StringTable()
        try r.object { r, key in
            switch key {
            case "format": format = try r.int()
            case "backup": backup = try Backup.readJSON(from: &r)
            case "database": database = try Database.readJSON(from: &r)
            case "options": options = try Options.readJSON(from: &r)
            case "databases": databases = try readList(&r) { try DatabaseEntry.readJSON(from: &$0) }
            case "targets": targets = try readList(&r) { try Target.readJSON(from: &$0) }
            case "paths": paths = try readList(&r) { try PathEntry.readJSON(from: &$0, strings: &strings) }
            case "links": links = try readList(&r) { try LinkEntry.readJSON(from: &$0, strings: &strings) }
            case "files":
                try r.array { r in try file(try FileEntry.readJSON(from: &r, strings: &strings)) }
                files = true
            case "bundles": bundles = try r.consumeNull() ? nil : readList(&r) { try BundleEntry.readJSON(from: &$0) }
            case "annotation":
                guard try !r.consumeNull() else { break }
                var notes: [String: String] = [:]
                try r.object { r, key in notes[key] = try r.string() }
                annotation = notes
            case "readerFeatures": readerFeatures = try readFeatures(&r)
            case "writerFeatures": writerFeatures = try readFeatures(&r)
            default:
                try r.skipValue()
            }
        }
        var manifest = Manifest(backup: try required(backup, "backup", in: "the manifest", r),
                                database: try required(database, "database", in: "the manifest", r),
                                options: try required(options, "options", in: "the manifest", r))
        manifest.format = try required(format, "format", in: "the manifest", r)
        manifest.databases = try required(databases, "databases", in: "the manifest", r)
        manifest.targets = try required(targets, "targets", in: "the manifest", r)
        manifest.paths = try required(paths, "paths", in: "the manifest", r)
        manifest.links = try required(links, "links", in: "the manifest", r)
        _ = try required(files, "files", in: "the manifest", r)
        manifest.bundles = bundles
        manifest.annotation = annotation
        manifest.readerFeatures = readerFeatures
        manifest.writerFeatures = writerFeatures
        return manifest
    }

    /// A JSON array of `element`s.
    private static func readList<T>(_ r: inout JSONStreamReader, _ element: (inout JSONStreamReader) throws -> T) throws -> [T] {
        var list: [T] = []
        try r.array { r in list.append(try element(&r)) }
        return list
    }

    /// A feature list (repo-layout.md §3.9); `null` reads as absent.
    private static func readFeatures(_ r: inout JSONStreamReader) throws -> [String]? {
        if try r.consumeNull() { return nil }
        var list: [String] = []
        try r.array { r in list.append(try r.string()) }
        return list
    }
}

extension Manifest.DatabaseEntry {
    static func readJSON(from r: inout JSONStreamReader) throws -> Self {
        var oid: UInt32?, name: String?
        try r.object { r, key in
            switch key {
            case "oid": oid = try r.uint32()
            case "name": name = try r.string()
            default: try r.skipValue()
            }
        }
        return Self(oid: try required(oid, "oid", in: "databases", r), name: try required(name, "name", in: "databases", r))
    }
}

extension Manifest.Target {
    static func readJSON(from r: inout JSONStreamReader) throws -> Self {
        var kind: Kind?, name: String?, path: String?, oid: UInt32?, spcname: String?
        try r.object { r, key in
            switch key {
            case "kind": kind = try r.string(as: "target kind", Kind.init(rawValue:))
            case "name": name = try r.string()
            case "path": path = try r.string()
            case "tablespaceOID": oid = try r.consumeNull() ? nil : r.uint32()
            case "tablespaceName": spcname = try r.consumeNull() ? nil : r.string()
            default: try r.skipValue()
            }
        }
        return Self(name: try required(name, "name", in: "targets", r), kind: try required(kind, "kind", in: "targets", r),
                    path: try required(path, "path", in: "targets", r), tablespaceOID: oid, tablespaceName: spcname)
    }
}

extension Manifest.PathEntry {
    static func readJSON(from r: inout JSONStreamReader, strings: inout StringTable) throws -> Self {
        var name: String?, mode: UInt32?, user: String?, group: String?
        try r.object { r, key in
            switch key {
            case "name": name = try r.string()
            case "mode": mode = try r.uint32()
            case "user": user = try r.consumeNull() ? nil : strings.intern(r.string())
            case "group": group = try r.consumeNull() ? nil : strings.intern(r.string())
            default: try r.skipValue()
            }
        }
        return Self(name: try required(name, "name", in: "paths", r), mode: try required(mode, "mode", in: "paths", r),
                    user: user, group: group)
    }
}

extension Manifest.LinkEntry {
    static func readJSON(from r: inout JSONStreamReader, strings: inout StringTable) throws -> Self {
        var name: String?, destination: String?, user: String?, group: String?
        try r.object { r, key in
            switch key {
            case "name": name = try r.string()
            case "destination": destination = try r.string()
            case "user": user = try r.consumeNull() ? nil : strings.intern(r.string())
            case "group": group = try r.consumeNull() ? nil : strings.intern(r.string())
            default: try r.skipValue()
            }
        }
        return Self(name: try required(name, "name", in: "links", r),
                    destination: try required(destination, "destination", in: "links", r), user: user, group: group)
    }
}

extension Manifest.BundleEntry {
    static func readJSON(from r: inout JSONStreamReader) throws -> Self {
        var id: Int?, repoSize: UInt64?, repoChecksum: SHA256Digest?
        try r.object { r, key in
            switch key {
            case "id": id = try r.int()
            case "repoSize": repoSize = try r.uint64()
            case "repoChecksum": repoChecksum = try r.string(as: "SHA-256", SHA256Digest.init(hex:))
            default: try r.skipValue()
            }
        }
        return Self(id: try required(id, "id", in: "bundles", r), repoSize: try required(repoSize, "repoSize", in: "bundles", r),
                    repoChecksum: try required(repoChecksum, "repoChecksum", in: "bundles", r))
    }
}

extension Manifest.Backup {
    func writeJSON(to w: inout JSONStreamWriter) throws {
        try w.beginObject()
        try w.key("label"); try w.value(label.text)
        try w.key("lsnStart"); try w.value(lsnStart.description)
        try w.key("lsnStop"); try w.value(lsnStop.description)
        if let pgkeepVersion { try w.key("pgkeepVersion"); try w.value(pgkeepVersion) }
        if let prior { try w.key("prior"); try w.value(prior.text) }
        if let references {
            try w.key("references")
            try w.beginArray()
            for reference in references { try w.element(); try w.value(reference.text) }
            try w.endArray()
        }
        try w.key("timeline"); try w.value(timeline)
        if let timestampCopyStart { try w.key("timestampCopyStart"); try w.value(timestampCopyStart) }
        try w.key("timestampStart"); try w.value(timestampStart)
        try w.key("timestampStop"); try w.value(timestampStop)
        try w.key("type"); try w.value(type.rawValue)
        try w.key("walStart"); try w.value(walStart)
        try w.key("walStop"); try w.value(walStop)
        try w.endObject()
    }

    static func readJSON(from r: inout JSONStreamReader) throws -> Self {
        var label: BackupLabel?, type: BackupType?, prior: BackupLabel?, references: [BackupLabel]?
        var timestampStart: Int64?, timestampStop: Int64?, timestampCopyStart: Int64?
        var lsnStart: LSN?, lsnStop: LSN?, walStart: String?, walStop: String?, timeline: UInt32?
        var pgkeepVersion: String?
        try r.object { r, key in
            switch key {
            case "label": label = try r.string(as: "backup label", BackupLabel.init)
            case "type": type = try r.string(as: "backup type", BackupType.init(rawValue:))
            case "prior": prior = try r.consumeNull() ? nil : r.string(as: "backup label", BackupLabel.init)
            case "references":
                if try r.consumeNull() { references = nil; return }
                var list: [BackupLabel] = []
                try r.array { r in list.append(try r.string(as: "backup label", BackupLabel.init)) }
                references = list
            case "timestampStart": timestampStart = try r.int64()
            case "timestampStop": timestampStop = try r.int64()
            case "timestampCopyStart": timestampCopyStart = try r.consumeNull() ? nil : r.int64()
            case "lsnStart": lsnStart = try r.string(as: "LSN", LSN.init)
            case "lsnStop": lsnStop = try r.string(as: "LSN", LSN.init)
            case "walStart": walStart = try r.string()
            case "walStop": walStop = try r.string()
            case "timeline": timeline = try r.uint32()
            case "pgkeepVersion": pgkeepVersion = try r.consumeNull() ? nil : r.string()
            default: try r.skipValue()
            }
        }
        let where_ = "backup"
        var backup = Self(label: try required(label, "label", in: where_, r), type: try required(type, "type", in: where_, r), prior: prior,
                          timestampStart: try required(timestampStart, "timestampStart", in: where_, r),
                          timestampStop: try required(timestampStop, "timestampStop", in: where_, r),
                          lsnStart: try required(lsnStart, "lsnStart", in: where_, r), lsnStop: try required(lsnStop, "lsnStop", in: where_, r),
                          walStart: try required(walStart, "walStart", in: where_, r), walStop: try required(walStop, "walStop", in: where_, r),
                          timeline: try required(timeline, "timeline", in: where_, r))
        backup.references = references
        backup.timestampCopyStart = timestampCopyStart
        backup.pgkeepVersion = pgkeepVersion
        return backup
    }
}

extension Manifest.Database {
    func writeJSON(to w: inout JSONStreamWriter) throws {
        try w.beginObject()
        try w.key("catalogVersion"); try w.value(catalogVersion)
        try w.key("controlVersion"); try w.value(controlVersion)
        try w.key("id"); try w.value(id)
        try w.key("pageChecksums"); try w.value(pageChecksums)
        try w.key("systemIdentifier"); try w.value(systemIdentifier)
        try w.key("version"); try w.value(version)
        try w.key("walSegmentSize"); try w.value(walSegmentSize)
        try w.endObject()
    }

    static func readJSON(from r: inout JSONStreamReader) throws -> Self {
        var id: Int?, systemIdentifier: UInt64?, version: Int?, controlVersion: UInt32?, catalogVersion: UInt32?
        var walSegmentSize: UInt32?, pageChecksums: Bool?
        try r.object { r, key in
            switch key {
            case "id": id = try r.int()
            case "systemIdentifier": systemIdentifier = try r.uint64()
            case "version": version = try r.int()
            case "controlVersion": controlVersion = try r.uint32()
            case "catalogVersion": catalogVersion = try r.uint32()
            case "walSegmentSize": walSegmentSize = try r.uint32()
            case "pageChecksums": pageChecksums = try r.bool()
            default: try r.skipValue()
            }
        }
        let where_ = "database"
        return Self(id: try required(id, "id", in: where_, r), systemIdentifier: try required(systemIdentifier, "systemIdentifier", in: where_, r),
                    version: try required(version, "version", in: where_, r),
                    controlVersion: try required(controlVersion, "controlVersion", in: where_, r),
                    catalogVersion: try required(catalogVersion, "catalogVersion", in: where_, r),
                    walSegmentSize: try required(walSegmentSize, "walSegmentSize", in: where_, r),
                    pageChecksums: try required(pageChecksums, "pageChecksums", in: where_, r))
    }
}

extension Manifest.Options {
    func writeJSON(to w: inout JSONStreamWriter) throws {
        try w.beginObject()
        if let archiveCheck { try w.key("archiveCheck"); try w.value(archiveCheck) }
        if let archiveCopy { try w.key("archiveCopy"); try w.value(archiveCopy) }
        try w.key("bufferSize"); try w.value(bufferSize)
        if let bundle { try w.key("bundle"); try w.value(bundle) }
        if let bundleLimit { try w.key("bundleLimit"); try w.value(bundleLimit) }
        if let bundleSize { try w.key("bundleSize"); try w.value(bundleSize) }
        if let checksumPage { try w.key("checksumPage"); try w.value(checksumPage) }
        try w.key("compressLevel"); try w.value(compressLevel)
        try w.key("compressType"); try w.value(compressType.rawValue)
        if let exclude {
            try w.key("exclude")
            try w.beginArray()
            for path in exclude { try w.element(); try w.value(path) }
            try w.endArray()
        }
        try w.key("processMax"); try w.value(processMax)
        try w.key("startFast"); try w.value(startFast)
        try w.endObject()
    }

    static func readJSON(from r: inout JSONStreamReader) throws -> Self {
        var compressType: CompressionType?, compressLevel: Int?, bufferSize: Int?, processMax: Int?, startFast: Bool?
        var bundle: Bool?, bundleLimit: UInt64?, bundleSize: UInt64?
        var archiveCheck: Bool?, archiveCopy: Bool?, checksumPage: Bool?, exclude: [String]?
        try r.object { r, key in
            switch key {
            case "compressType": compressType = try r.string(as: "compression type", CompressionType.init(rawValue:))
            case "compressLevel": compressLevel = try r.int()
            case "bufferSize": bufferSize = try r.int()
            case "processMax": processMax = try r.int()
            case "startFast": startFast = try r.bool()
            case "bundle": bundle = try r.consumeNull() ? nil : r.bool()
            case "bundleLimit": bundleLimit = try r.consumeNull() ? nil : r.uint64()
            case "bundleSize": bundleSize = try r.consumeNull() ? nil : r.uint64()
            case "archiveCheck": archiveCheck = try r.consumeNull() ? nil : r.bool()
            case "archiveCopy": archiveCopy = try r.consumeNull() ? nil : r.bool()
            case "checksumPage": checksumPage = try r.consumeNull() ? nil : r.bool()
            case "exclude":
                var paths: [String] = []
                try r.array { paths.append(try $0.string()) }
                exclude = paths
            default: try r.skipValue()
            }
        }
        let where_ = "options"
        var options = Self(compressType: try required(compressType, "compressType", in: where_, r),
                    compressLevel: try required(compressLevel, "compressLevel", in: where_, r),
                    bufferSize: try required(bufferSize, "bufferSize", in: where_, r),
                    processMax: try required(processMax, "processMax", in: where_, r),
                    startFast: try required(startFast, "startFast", in: where_, r),
                    bundle: bundle, bundleLimit: bundleLimit, bundleSize: bundleSize)
        options.archiveCheck = archiveCheck
        options.archiveCopy = archiveCopy
        options.checksumPage = checksumPage
        options.exclude = exclude
        return options
    }
}

extension Manifest.FileEntry {
    func writeJSON(to w: inout JSONStreamWriter) throws {
        try w.beginObject()
        if let blockMapChecksum { try w.key("blockMapChecksum"); try w.value(blockMapChecksum) }
        if let blockMapSize { try w.key("blockMapSize"); try w.value(blockMapSize) }
        if let blockSize { try w.key("blockSize"); try w.value(blockSize) }
        if let bundle { try w.key("bundle"); try w.value(bundle) }
        if let bundleOffset { try w.key("bundleOffset"); try w.value(bundleOffset) }
        try w.key("checksum"); try w.value(checksum)
        try w.key("compression"); try w.value(compression.rawValue)
        if let group { try w.key("group"); try w.value(group) }
        try w.key("mode"); try w.value(mode)
        try w.key("mtime"); try w.value(mtime)
        try w.key("name"); try w.value(name)
        if let pageChecksumErrors {
            try w.key("pageChecksumErrors")
            try w.beginArray()
            for block in pageChecksumErrors { try w.element(); try w.value(block) }
            try w.endArray()
        }
        try w.key("reference"); try w.value(reference.text)
        try w.key("repoChecksum"); try w.value(repoChecksum)
        try w.key("repoSize"); try w.value(repoSize)
        try w.key("size"); try w.value(size)
        if let user { try w.key("user"); try w.value(user) }
        try w.endObject()
    }

    static func readJSON(from r: inout JSONStreamReader, strings: inout StringTable) throws -> Self {
        var name: String?, size: UInt64?, mtime: Int64?, mode: UInt32?, user: String?, group: String?
        var checksum: SHA256Digest?, repoSize: UInt64?, repoChecksum: SHA256Digest?, compression: CompressionType?
        var reference: BackupLabel?, blockSize: Int?, blockMapSize: UInt64?, blockMapChecksum: SHA256Digest?
        var pageChecksumErrors: [UInt32]?, bundle: Int?, bundleOffset: UInt64?
        try r.object { r, key in
            switch key {
            case "name": name = try r.string()
            case "size": size = try r.uint64()
            case "mtime": mtime = try r.int64()
            case "mode": mode = try r.uint32()
            case "user": user = try r.consumeNull() ? nil : strings.intern(r.string())
            case "group": group = try r.consumeNull() ? nil : strings.intern(r.string())
            case "checksum": checksum = try r.string(as: "SHA-256", SHA256Digest.init(hex:))
            case "repoSize": repoSize = try r.uint64()
            case "repoChecksum": repoChecksum = try r.string(as: "SHA-256", SHA256Digest.init(hex:))
            case "compression": compression = try r.string(as: "compression type", CompressionType.init(rawValue:))
            case "reference": reference = try strings.label(r.string(as: "backup label", BackupLabel.init))
            case "blockSize": blockSize = try r.consumeNull() ? nil : r.int()
            case "blockMapSize": blockMapSize = try r.consumeNull() ? nil : r.uint64()
            case "blockMapChecksum": blockMapChecksum = try r.consumeNull() ? nil : r.string(as: "SHA-256", SHA256Digest.init(hex:))
            case "pageChecksumErrors":
                if try r.consumeNull() { pageChecksumErrors = nil; return }
                var list: [UInt32] = []
                try r.array { r in list.append(try r.uint32()) }
                pageChecksumErrors = list
            case "bundle": bundle = try r.consumeNull() ? nil : r.int()
            case "bundleOffset": bundleOffset = try r.consumeNull() ? nil : r.uint64()
            default: try r.skipValue()
            }
        }
        let where_ = "files" + (name.map { " ('\($0)')" } ?? "")
        var entry = Self(name: try required(name, "name", in: where_, r), size: try required(size, "size", in: where_, r),
                         mtime: try required(mtime, "mtime", in: where_, r), mode: try required(mode, "mode", in: where_, r),
                         user: user, group: group, checksum: try required(checksum, "checksum", in: where_, r),
                         repoSize: try required(repoSize, "repoSize", in: where_, r),
                         repoChecksum: try required(repoChecksum, "repoChecksum", in: where_, r),
                         compression: try required(compression, "compression", in: where_, r),
                         reference: try required(reference, "reference", in: where_, r))
        entry.blockSize = blockSize
        entry.blockMapSize = blockMapSize
        entry.blockMapChecksum = blockMapChecksum
        entry.pageChecksumErrors = pageChecksumErrors
        entry.bundle = bundle
        entry.bundleOffset = bundleOffset
        return entry
    }
}

/// One copy of each string that repeats across manifest entries (owner names, backup labels):
/// equal strings then share their storage instead of holding one allocation per entry.
struct StringTable {
    private var strings: Set<String> = []
    private var labels: Set<BackupLabel> = []

    mutating func intern(_ text: String) -> String {
        if let known = strings.firstIndex(of: text) { return strings[known] }
        strings.insert(text)
        return text
    }

    mutating func label(_ label: BackupLabel) -> BackupLabel {
        if let known = labels.firstIndex(of: label) { return labels[known] }
        labels.insert(label)
        return label
    }
}

/// The value of a member the manifest must have.
private func required<T>(_ value: T?, _ key: String, in context: String, _ r: borrowing JSONStreamReader) throws -> T {
    guard let value else { throw r.error("missing key '\(key)' in \(context)") }
    return value
}

// Each entry's object, keys sorted as every sealed body's are (repo-layout.md §3).

extension Manifest.BundleEntry {
    func writeJSON(to w: inout JSONStreamWriter) throws {
        try w.beginObject()
        try w.key("id"); try w.value(id)
        try w.key("repoChecksum"); try w.value(repoChecksum)
        try w.key("repoSize"); try w.value(repoSize)
        try w.endObject()
    }
}

extension Manifest.DatabaseEntry {
    func writeJSON(to w: inout JSONStreamWriter) throws {
        try w.beginObject()
        try w.key("name"); try w.value(name)
        try w.key("oid"); try w.value(oid)
        try w.endObject()
    }
}

extension Manifest.LinkEntry {
    func writeJSON(to w: inout JSONStreamWriter) throws {
        try w.beginObject()
        try w.key("destination"); try w.value(destination)
        if let group { try w.key("group"); try w.value(group) }
        try w.key("name"); try w.value(name)
        if let user { try w.key("user"); try w.value(user) }
        try w.endObject()
    }
}

extension Manifest.PathEntry {
    func writeJSON(to w: inout JSONStreamWriter) throws {
        try w.beginObject()
        if let group { try w.key("group"); try w.value(group) }
        try w.key("mode"); try w.value(mode)
        try w.key("name"); try w.value(name)
        if let user { try w.key("user"); try w.value(user) }
        try w.endObject()
    }
}

extension Manifest.Target {
    func writeJSON(to w: inout JSONStreamWriter) throws {
        try w.beginObject()
        try w.key("kind"); try w.value(kind.rawValue)
        try w.key("name"); try w.value(name)
        try w.key("path"); try w.value(path)
        if let tablespaceName { try w.key("tablespaceName"); try w.value(tablespaceName) }
        if let tablespaceOID { try w.key("tablespaceOID"); try w.value(tablespaceOID) }
        try w.endObject()
    }
}
