import Testing
@testable import PGKeep

@Test("error codes stay below 126 so PostgreSQL never treats them as fatal")
func integrationPlaceholder() {
    for code in ErrorCode.allCases { #expect(code.rawValue >= 1 && code.rawValue <= 125) }
}
