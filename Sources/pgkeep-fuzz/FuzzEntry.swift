// pgkeep-fuzz: one binary for every `ParserFuzzTarget`.
//
// Built with `-D PGKEEP_FUZZ -sanitize=fuzzer,address` (`make fuzz`), it is a libFuzzer binary
// whose target is named by PGKEEP_FUZZ_TARGET, read once: libFuzzer allows one entry point per
// binary, and one SwiftPM product instead of fourteen keeps the build to a single link. Its main
// is ours and hands over to libFuzzer's driver, because SwiftPM links an executable target's
// main as `<module>_main` (`--defsym main=pgkeep_fuzz_main`), which libFuzzer's main is not.
//
// Built plainly (as `swift build` does), it replays inputs: `pgkeep-fuzz <target> <file|dir>...`
// feeds each file to the target and prints what the parser made of it, which reproduces a crash
// without the sanitizer build.

#if canImport(Glibc)
import Glibc
#endif
import PGKeepCore
import PGKeepFuzz

#if PGKEEP_FUZZ
import CLibFuzzer

/// The target, chosen once per process.
private let fuzzTarget: ParserFuzzTarget = {
    let name = getenv("PGKEEP_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = ParserFuzzTarget(rawValue: name) else {
        let names = ParserFuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
        Posix.writeStandardError("pgkeep-fuzz: set PGKEEP_FUZZ_TARGET to one of: \(names)\n")
        exit(2)
    }
    return target
}()

@_cdecl("pgkeep_fuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var argc = argc
    var argv = argv
    _ = fuzzTarget
    return LLVMFuzzerRunDriver(&argc, &argv, fuzzTestOneInput)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size == 0 || data == nil ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    do {
        _ = try fuzzTarget.run(bytes)
    } catch {
        // A broken contract that did not trap: abort so libFuzzer keeps the input as a crash.
        Posix.writeStandardError("pgkeep-fuzz: \(fuzzTarget.rawValue): \(error)\n")
        abort()
    }
    return 0
}

#else

@main
enum Replay {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let first = arguments.first, let target = ParserFuzzTarget(rawValue: first), arguments.count > 1 else {
            let names = ParserFuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
            Posix.writeStandardError("usage: pgkeep-fuzz <target> <file|directory>...\ntargets: \(names)\n")
            exit(2)
        }
        var findings = 0
        for path in arguments.dropFirst() {
            for file in files(at: path) {
                guard let bytes = read(file) else {
                    Posix.writeStandardError("pgkeep-fuzz: cannot read '\(file)'\n")
                    exit(2)
                }
                do {
                    print("\(file): \(try target.run(bytes))")
                } catch {
                    print("\(file): FINDING \(error)")
                    findings += 1
                }
            }
        }
        exit(findings == 0 ? 0 : 1)
    }

    /// `path` itself, or the regular files below it, sorted.
    static func files(at path: String) -> [String] {
        guard let dir = opendir(path) else { return [path] }
        defer { closedir(dir) }
        var found: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
            guard name != ".", name != ".." else { continue }
            found += files(at: path + "/" + name)
        }
        return found.sorted()
    }

    static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            if n > 0 { bytes += buffer[..<n] }
            if n < buffer.count { return ferror(file) == 0 ? bytes : nil }
        }
    }
}

#endif
