import PGKeepCore

extension ClusterWalker {
    /// The listed files, packed: a cluster of many small tables has hundreds of thousands of files,
    /// and a `ListedFile` with its two strings costs about 250 bytes. Here a file costs one 40-byte
    /// record plus its path below its root (`base/5/16384`) in one shared byte arena; the manifest
    /// name and absolute path are the root's prefixes plus that tail, and owners are numbers into a
    /// table of names. Subscripting builds the `ListedFile` on demand.
    struct FileList: RandomAccessCollection {
        private struct Record {
            var size: UInt64
            var mtime: Int64
            var tailStart: Int
            var tailLength: UInt32
            var mode: UInt32
            var root: UInt16
            var user: UInt16
            var group: UInt16
        }

        /// A directory files are listed under: the manifest-name and absolute-path prefixes that
        /// precede a file's tail.
        private struct Root: Hashable {
            var namePrefix: String
            var pathPrefix: String
        }

        private var records: [Record] = []
        private var arena: [UInt8] = []
        private var roots = InternTable<Root>(of: "listing directories")
        /// Owner names; number 0 is "no name".
        private var owners = InternTable<String?>(of: "owner names", preset: [nil])

        init() {}

        /// Files listed in this order.
        init(_ files: [ListedFile]) throws {
            for file in files { try append(file) }
        }

        var startIndex: Int { 0 }
        var endIndex: Int { records.count }

        subscript(index: Int) -> ListedFile {
            let record = records[index]
            let root = roots[record.root]
            let tail = arena.withUnsafeBufferPointer {
                String(decoding: UnsafeBufferPointer(rebasing: $0[record.tailStart..<record.tailStart + Int(record.tailLength)]), as: UTF8.self)
            }
            return ListedFile(name: root.namePrefix + tail, pathText: root.pathPrefix + tail, size: record.size, mtime: record.mtime,
                              mode: record.mode, user: owners[record.user], group: owners[record.group])
        }

        /// The manifest name of file `index` (without building its path).
        func name(_ index: Int) -> String {
            let record = records[index]
            return arena.withUnsafeBufferPointer {
                roots[record.root].namePrefix
                    + String(decoding: UnsafeBufferPointer(rebasing: $0[record.tailStart..<record.tailStart + Int(record.tailLength)]), as: UTF8.self)
            }
        }

        /// Adds a file. Its name and path must end in the same tail after a `/` (or be equal), as
        /// every name the walker makes does; a file that does not is kept whole as its own root.
        mutating func append(_ file: ListedFile) throws {
            var name = file.name
            var path = file.pathText
            let tail = Self.commonTail(name, path)
            name.removeLast(tail.utf8.count)
            path.removeLast(tail.utf8.count)
            let root = try roots.number(of: Root(namePrefix: name, pathPrefix: path))
            let start = arena.count
            arena.append(contentsOf: tail.utf8)
            guard let length = UInt32(exactly: tail.utf8.count) else {
                throw PGKeepError(.internal, "path '\(file.path)' is too long to list")
            }
            records.append(Record(size: file.size, mtime: file.mtime, tailStart: start, tailLength: length, mode: file.mode,
                                  root: root, user: try owners.number(of: file.user), group: try owners.number(of: file.group)))
        }

        /// The longest common suffix of `a` and `b` that starts after a `/` in both.
        private static func commonTail(_ a: String, _ b: String) -> String {
            let x = Array(a.utf8), y = Array(b.utf8)
            var n = 0
            var lastSlash = 0  // length of the longest common suffix that follows a '/' in both
            while n < x.count && n < y.count && x[x.count - 1 - n] == y[y.count - 1 - n] {
                n += 1
                let i = x.count - n, j = y.count - n
                if i > 0 && j > 0 && x[i - 1] == UInt8(ascii: "/") && y[j - 1] == UInt8(ascii: "/") { lastSlash = n }
            }
            return String(decoding: x[(x.count - lastSlash)...], as: UTF8.self)
        }
    }
}
