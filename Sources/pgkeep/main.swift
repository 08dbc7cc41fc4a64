#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PGKeepCore

MallocTuning.apply()
exit(CLI.run(Array(CommandLine.arguments.dropFirst())))
