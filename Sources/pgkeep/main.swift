#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PGKeep

MallocTuning.apply()
exit(CLI.run(Array(CommandLine.arguments.dropFirst())))
