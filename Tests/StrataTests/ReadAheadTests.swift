import Foundation
import XCTest

/// What the daemon reads ahead of a reader, seen in the page cache of the lower layer's files (`fincore`): a
/// reader that opens a lower file gets the start of its siblings' data asked for, and nothing else is read.
final class ReadAheadTests: XCTestCase {
    var scratch: Scratch!

    override func setUp() { scratch = Scratch() }
    override func tearDown() { scratch.remove() }

    /// Bytes of a file in the page cache.
    private func resident(_ path: String) -> Int {
        Int(Shell.bash("fincore -b -n -o RES \(path)").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    func testOpeningALowerFileReadsItsSiblingsAheadAndNothingElse() {
        let lower = scratch.sub("lower"), upper = scratch.sub("upper"), work = scratch.sub("work")
        let mnt = scratch.sub("mnt"), canary = scratch.sub("canary")
        Shell.bash("""
            mkdir -p \(lower)/d/sub \(lower)/e \(upper) \(work) \(mnt) \(canary)
            for i in $(seq 1 40); do head -c 49152 /dev/urandom > \(lower)/d/file-$i; done
            head -c 8388608 /dev/urandom > \(lower)/d/large
            head -c 65536 /dev/urandom > \(lower)/d/sub/inner; head -c 49152 /dev/urandom > \(lower)/e/file
            head -c 65536 /dev/urandom > \(canary)/secret; ln -s \(canary)/secret \(lower)/d/outside
            mkfifo \(lower)/d/fifo
            """)
        XCTAssertEqual(Mounts.strata("lowerdir=\(lower),upperdir=\(upper),workdir=\(work)", at: mnt).status, 0)
        defer { Mounts.unmount(mnt) }
        Shell.bash("sync; echo 3 > /proc/sys/vm/drop_caches; find \(mnt) -size +1 > /dev/null; du -s \(mnt) > /dev/null")
        XCTAssertEqual(resident("\(lower)/d/file-40"), 0, "a walk reads no file's data")

        XCTAssertEqual(Shell.bash("cmp \(mnt)/d/file-1 \(lower)/d/file-1 && echo same"), "same\n")
        // The read-ahead workers take siblings in any order, so wait for all of them. WILLNEED is advisory: the
        // kernel's readahead gives up at the first page it cannot allocate at once, and a CI run once found three
        // of the 40 siblings with 10 or 11 of their 12 pages. That a sibling was asked for shows as its start.
        let siblings = (1...40).map { "\(lower)/d/file-\($0)" }
        var waited = 0
        while siblings.contains(where: { resident($0) < 49152 }), waited < 100 {
            usleep(100_000)
            waited += 1
        }
        for file in siblings { XCTAssertGreaterThan(resident(file), 0, "\(file) was read ahead") }
        let large = resident("\(lower)/d/large")
        XCTAssertGreaterThan(large, 0, "the start of a large sibling is read ahead")
        XCTAssertLessThanOrEqual(large, 1 << 20, "but not the whole of it")
        XCTAssertEqual(resident("\(canary)/secret"), 0, "a link is not followed")
        XCTAssertEqual(resident("\(lower)/d/sub/inner"), 0, "a subdirectory's files are not siblings")
        XCTAssertEqual(resident("\(lower)/e/file"), 0, "another directory's files are not read")
        XCTAssertEqual(Shell.bash("cat \(mnt)/d/file-* | cmp - <(cat \(lower)/d/file-*) && echo same"), "same\n")
        XCTAssertEqual(Shell.bash("timeout 10 ls \(mnt)/d | wc -l"), "44\n", "the fifo blocked nothing")
    }
}
