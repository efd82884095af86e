import DroplineSupport
import Foundation
import Testing

@Suite("CSV as spreadsheets write it")
struct CSVReaderTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/csv").path

    @Test("the rows Python's csv module reads from the same files", arguments: ["excel-utf8", "quoted-all", "semicolons", "cr-and-blank", "odd", "tabs"])
    func matchesPython(name: String) throws {
        let text = try #require(String(data: try Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/" + name + ".csv")), encoding: .utf8))
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/" + name + ".json"))) as! [String: Any]
        let delimiter = CSVReader.delimiter(ofHeader: text)
        #expect(String(delimiter) == expected["delimiter"] as? String)
        let rows = try CSVReader(delimiter: delimiter).rows(text).map(\.values)
        #expect(rows == (expected["rows"] as! [[String]]), "\(rows)")
    }

    @Test("fields keep their line and column, across quoted line breaks")
    func positions() throws {
        let rows = try CSVReader().rows("a,\"b\nc\",d\r\ne,f\n")
        #expect(rows.map(\.line) == [1, 3])
        #expect(rows[0].fields.map { [$0.line, $0.column] } == [[1, 1], [1, 3], [2, 4]])
        #expect(rows[1].fields.map { [$0.line, $0.column] } == [[3, 1], [3, 3]])
    }

    @Test("a quoted field never closed and a NUL are refused with where they are")
    func refusals() {
        #expect(throws: CSVReader.ParseError(line: 2, column: 3, reason: "this quoted field is never closed (a missing \")")) {
            try CSVReader().rows("a,b\nc,\"d,e\nf\n")
        }
        #expect(throws: CSVReader.ParseError.self) { try CSVReader().rows("a,b\u{0}\n") }
    }
}
