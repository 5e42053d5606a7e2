import Foundation
import XCTest

/// `strata explore` in a real terminal: tmux runs it on Fixtures/explore-stack.sh (layers 0 = upper, 1 = l1 with a
/// renamed directory, 2 = l2 with an override, a whiteout and an opaque directory, 3 = base), the test types keys
/// and reads the screen after each.
final class ExploreTests: XCTestCase {
    var scratch: Scratch!

    override func setUp() { scratch = Scratch() }
    override func tearDown() { scratch.remove() }

    /// One tmux server of its own (its own socket), killed in every outcome.
    private final class Tmux {
        let socket: String

        init(_ command: String, width: Int, height: Int) {
            socket = "strata-explore-\(UUID().uuidString)"
            tmux(["new-session", "-d", "-s", "explore", "-x", String(width), "-y", String(height),
                  "env LANG=C.UTF-8 \(command); sleep 600"])
        }

        /// Runs tmux through the shell with its output in a file: the server it may start keeps no pipe of ours
        /// open, and system() reaps what it starts.
        @discardableResult
        func tmux(_ arguments: [String]) -> String {
            let output = NSTemporaryDirectory() + "strata-tmux-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: output) }
            let quoted = (["timeout", "-k", "5", "20", "tmux", "-u", "-L", socket] + arguments)
                .map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
            _ = system(quoted + " </dev/null >'\(output)' 2>&1")
            return (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        }

        var screen: String { tmux(["capture-pane", "-p", "-t", "explore"]) }

        func keys(_ keys: String...) { tmux(["send-keys", "-t", "explore"] + keys) }

        /// The screen once `condition` holds of it (or as it is after `seconds`).
        func screen(within seconds: Double = 10, where condition: (String) -> Bool) -> String {
            var last = ""
            _ = waitUntil(seconds) {
                last = screen
                return condition(last)
            }
            return last
        }

        func kill() { tmux(["kill-server"]) }
    }

    /// The tree pane's rows, by name (a directory's with its slash): the mark letter (A, M, R or blank) and the line.
    private func tree(_ screen: String) -> [String: (mark: String, line: String)] {
        var rows: [String: (String, String)] = [:]
        for line in screen.split(separator: "\n") {
            guard let bar = line.firstIndex(of: "│") else { continue }
            let pane = String(line[line.index(after: bar)...])
            guard let branch = pane.range(of: "── "), let name = pane[branch.upperBound...].split(separator: " ").first else { continue }
            rows[String(name)] = (String(pane.dropFirst().prefix(1)), pane)
        }
        return rows
    }

    func testBrowserMarksFiltersDetailsAggregateAndResize() {
        let stack = scratch.sub("stack")
        Shell.bash("'\(Paths.fixtures)/explore-stack.sh' '\(stack)'")
        let session = Tmux("'\(Paths.strata)' explore -o lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/base,upperdir=\(stack)/upper",
                           width: 150, height: 40)
        defer { session.kill() }

        // The aggregate through the top layer: every mark, removed names greyed with what hides them.
        var screen = session.screen { $0.contains("Aggregate through layer 0") && $0.contains("passwd") }
        XCTAssertTrue(screen.contains("┃ Layers"), screen)
        XCTAssertTrue(screen.contains("Efficiency:  50.00%"), screen)
        XCTAssertTrue(screen.contains("/app/data"), screen) // the wasted-space list
        var rows = tree(screen)
        XCTAssertEqual(rows["data"]?.mark, "M", screen) // chmod -R carried it again
        XCTAssertTrue(rows["data"]?.line.contains("-rw-------") ?? false, screen)
        XCTAssertEqual(rows["hostname"]?.mark, "M")
        XCTAssertEqual(rows["issue"]?.mark, "A")
        XCTAssertEqual(rows["passwd"]?.mark, " ") // the base is the baseline
        XCTAssertEqual(rows["motd"]?.mark, "R")
        XCTAssertTrue(rows["motd"]?.line.contains("(whited out in layer 2)") ?? false, screen)
        XCTAssertEqual(rows["x"]?.mark, "R")
        XCTAssertTrue(rows["x"]?.line.contains("(behind opaque directory in layer 2)") ?? false, screen)
        XCTAssertEqual(rows["new/"]?.mark, "A") // the renamed directory, with its lower contents
        XCTAssertTrue(rows["old/"]?.line.contains("(whited out in layer 1)") ?? false, screen)
        XCTAssertTrue(screen.contains(" /app  layer 0,3  directory, merged from 2 layers"), screen)

        // Moving down to app/data: the details line says what `strata which` says.
        session.keys("Down")
        screen = session.screen { $0.contains(" /app/data  layer 0  ") }
        XCTAssertTrue(screen.contains(" /app/data  layer 0  file, copied up, shadows layer 3"), screen)

        // Filters: Ctrl-U hides unchanged entries, Ctrl-A added ones, Ctrl-R removed ones, Ctrl-M modified ones.
        let steps: [(key: String, header: String, hidden: [String], shown: [String])] = [
            ("C-u", "[A R M ·]", ["passwd"], ["issue"]),
            ("C-a", "[· R M ·]", ["issue"], ["motd", "hostname"]),
            ("C-r", "[· · M ·]", ["motd"], ["hostname", "data"]),
        ]
        for step in steps {
            session.keys(step.key)
            screen = session.screen { $0.contains(step.header) }
            rows = tree(screen)
            for name in step.hidden { XCTAssertNil(rows[name], "\(step.key) hides \(name): \(screen)") }
            for name in step.shown { XCTAssertNotNil(rows[name], "\(step.key) keeps \(name): \(screen)") }
        }
        XCTAssertEqual(Set(rows.values.map(\.mark)).subtracting([" "]), ["M"], screen)
        session.keys("C-m")
        screen = session.screen { $0.contains("[· · · ·]") }
        XCTAssertTrue(screen.contains("(nothing matches)"), screen)
        session.keys("C-a", "C-r", "C-m", "C-u")
        screen = session.screen { $0.contains("[A R M U]") }

        // Ctrl-L: one layer's changes. Select layer 1 in the layers pane (Tab twice: tree, wasted, layers).
        session.keys("Tab", "Tab", "Down", "C-l")
        screen = session.screen { $0.contains("Layer 1 changes") }
        rows = tree(screen)
        XCTAssertEqual(Set(rows.keys), ["etc/", "issue", "opt/", "new/", "a", "b", "old/"], screen)
        XCTAssertEqual(rows["old/"]?.mark, "R")
        session.keys("C-l")
        screen = session.screen { $0.contains("Aggregate through layer 1") }
        rows = tree(screen)
        XCTAssertEqual(rows["data"]?.mark, " ", screen) // layer 0's copy-up is above layer 1
        XCTAssertTrue(rows["data"]?.line.contains("-rw-r--r--") ?? false, screen)

        // Space folds a directory; Ctrl-F narrows the tree to matching names.
        session.keys("Tab", "Home", "Space")
        screen = session.screen { $0.contains("app/ …") }
        XCTAssertNil(tree(screen)["data"], screen)
        session.keys("Space", "C-f", "h", "o", "s", "t", "Enter")
        screen = session.screen { $0.contains("search: host") && !$0.contains("search: host_") }
        XCTAssertEqual(Set(tree(screen).keys), ["etc/", "hostname"], screen)

        // A smaller terminal: everything is laid out again inside it.
        session.tmux(["resize-window", "-t", "explore", "-x", "80", "-y", "20"])
        screen = session.screen { $0.split(separator: "\n", omittingEmptySubsequences: false).count <= 21 }
        let lines = screen.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertLessThanOrEqual(lines.map(\.count).max() ?? 0, 80, screen)
        XCTAssertTrue(lines.contains { $0.hasPrefix(" Tab pane") }, screen)
        XCTAssertTrue(lines.contains { $0.contains(" /etc") && $0.contains("layer") }, screen)

        session.keys("q")
        screen = session.screen { !$0.contains("┃ Layers") }
        XCTAssertFalse(screen.contains("┃ Layers"), "q leaves the browser")
    }

    /// An image straight from its tarballs (layers with their history), and a live mount found from a path in it.
    func testImageAndLiveMount() {
        let layout = scratch.sub("layout")
        Shell.bash("python3 '\(Paths.fixtures)/efficiency-image.py' '\(layout)'")
        var session = Tmux("'\(Paths.strata)' explore --image \(layout):wasteful", width: 150, height: 30)
        var screen = session.screen { $0.contains("RUN chmod 600 /") && $0.contains("conf") }
        XCTAssertTrue(screen.contains(" 2    10M        6   0  sha256:"), screen) // the base: its size, entries, digest
        // In the layers pane the details line has the selected layer's whole history entry.
        session.keys("Tab", "Tab", "Down")
        let history = session.screen { $0.contains(" layer 1: sha256:") }
        XCTAssertTrue(history.contains("  RUN chmod 600 /big && rm /small\n"), history)
        session.kill()
        var rows = tree(screen)
        XCTAssertEqual(rows["big"]?.mark, "M", screen)
        XCTAssertEqual(rows["small"]?.mark, "R", screen)
        XCTAssertTrue(rows["a"]?.line.contains("(behind opaque directory in layer 0)") ?? false, screen)
        XCTAssertEqual(rows["b"]?.mark, "A", screen)

        let stack = scratch.sub("stack"), mnt = scratch.sub("mnt")
        Shell.bash("'\(Paths.fixtures)/explore-stack.sh' '\(stack)' && mkdir -p \(mnt)")
        XCTAssertEqual(Mounts.strata("lowerdir=\(stack)/l1:\(stack)/l2:\(stack)/base,upperdir=\(stack)/upper,workdir=\(stack)/work",
                                     at: mnt).status, 0)
        defer { Mounts.unmount(mnt) }
        Shell.bash("echo later > \(mnt)/etc/written")
        session = Tmux("'\(Paths.strata)' explore \(mnt)/etc", width: 150, height: 40)
        defer { session.kill() }
        screen = session.screen { $0.contains("written") }
        rows = tree(screen)
        XCTAssertEqual(rows["written"]?.mark, "A", screen)
        XCTAssertTrue(screen.contains("\(stack)/upper"), screen)
        // check takes the mount the same way: the upper layer's chmod -R copy-up is its waste.
        let check = Shell.run([Paths.strata, "check", "--json", mnt + "/etc"])
        XCTAssertEqual(check.status, 1, check.error)
        XCTAssertTrue(check.output.contains("\"path\" : \"/app/data\""), check.output)
    }

    /// A 60,000-entry stack: the browser opens, filters, folds and jumps to the end while the user waits (the
    /// timings are the benchmark's business; here only that every step lands).
    func testLargeStack() {
        let base = scratch.sub("base"), top = scratch.sub("top")
        Shell.bash("""
            python3 -c '
            import os, sys
            base, top = sys.argv[1], sys.argv[2]
            for d in range(300):
                os.makedirs(f"{base}/d{d:03}")
                for f in range(200):
                    open(f"{base}/d{d:03}/f{f:03}", "w").write("x")
            for d in range(0, 300, 3):
                os.makedirs(f"{top}/d{d:03}")
                for f in range(10):
                    open(f"{top}/d{d:03}/f{f:03}", "w").write("changed")
            ' '\(base)' '\(top)'
            """)
        let session = Tmux("'\(Paths.strata)' explore -o lowerdir=\(top):\(base)", width: 120, height: 30)
        defer { session.kill() }
        var screen = session.screen(within: 60) { $0.contains("d000/") }
        XCTAssertTrue(screen.contains("60300"), screen) // the base layer's entries
        XCTAssertTrue(screen.contains("Wasted:      6.8K in 1000 paths"), screen)
        session.keys("C-u")
        screen = session.screen(within: 30) { $0.contains("[A R M ·]") }
        XCTAssertEqual(tree(screen)["f000"]?.mark, "M", screen)
        session.keys("C-u", "End")
        screen = session.screen(within: 30) { $0.contains("/d299/f199") }
        XCTAssertTrue(screen.contains("└── f199"), screen)
    }

    func testExploreNeedsATerminal() {
        let stack = scratch.sub("stack")
        Shell.bash("'\(Paths.fixtures)/explore-stack.sh' '\(stack)'")
        let outcome = Shell.run([Paths.strata, "explore", "-o", "lowerdir=\(stack)/base"])
        XCTAssertNotEqual(outcome.status, 0)
        XCTAssertTrue(outcome.error.contains("needs a terminal"), outcome.error)
    }
}
