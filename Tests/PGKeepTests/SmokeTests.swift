import Foundation
import Testing
@testable import PGKeepCore
@testable import PGKeepPostgres
@testable import PGKeepRepository
@testable import PGKeepMover
@testable import PGKeepEngine
@testable import PGKeepConfig

@Test("error codes stay below 126 so PostgreSQL never treats them as fatal")
func errorCodesBelow126() {
    for code in ErrorCode.allCases { #expect(code.rawValue >= 1 && code.rawValue <= 125) }
}

@Test("a permission error (EACCES, EPERM) keeps its code and path and hints at the user pgkeep runs as; a caller's own hint wins")
func permissionErrorsHintAtTheUser() {
    let path = "/repo/backup/main"
    for errno in [EACCES, EPERM] {
        let error = PGKeepError.system(.pathCreate, "unable to create directory", path: path, errno: errno)
        #expect(error.code == .pathCreate && error.message.hasPrefix("unable to create directory '\(path)': "), "\(error)")
        #expect(error.hint?.contains("uid \(geteuid())") == true && error.hint?.contains("'\(path)'") == true, "\(error)")
    }
    let own = PGKeepError.system(.fileOpen, "unable to open", path: path, errno: EACCES, hint: "do this")
    #expect(own.hint == "do this")
    #expect(PGKeepError.system(.fileOpen, "unable to open", path: path, errno: ENOENT).hint == nil)
}
