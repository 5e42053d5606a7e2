import ArgumentParser
import Foundation
import Strata
import StrataCommands

/// dive's CI mode: the stack's efficiency against rules from flags or a `.dive-ci` file.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Checks a stack's efficiency against dive's CI rules (from flags or .dive-ci): PASS or FAIL per rule, exit status 1 on a failure.")

    @OptionGroup var source: StackSourceOptions

    @Option(name: .customLong("ci-config"), help: ArgumentHelp("A rules file in dive's format (default: .dive-ci, when present).", valueName: "file"))
    var configFile: String?

    @Option(name: .customLong("lowestEfficiency"), help: ArgumentHelp("Fail below this efficiency, 0 to 1 (default 0.9), or disabled.", valueName: "ratio"))
    var lowestEfficiency: String?

    @Option(name: .customLong("highestWastedBytes"), help: ArgumentHelp("Fail above this many wasted bytes, as 20MB or 1GiB (default disabled).", valueName: "size"))
    var highestWastedBytes: String?

    @Option(name: .customLong("highestUserWastedPercent"), help: ArgumentHelp("Fail when wasted bytes exceed this share of the bytes above the base layer, 0 to 1 (default 0.1), or disabled.", valueName: "ratio"))
    var highestUserWastedPercent: String?

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        var rules = CheckRules()
        let file = configFile ?? (FileManager.default.fileExists(atPath: ".dive-ci") ? ".dive-ci" : nil)
        let outcome: EfficiencyReports.CheckOutcome
        do {
            if let file { try rules.load(file: file) }
            for (rule, value) in [(CheckRules.Rule.lowestEfficiency, lowestEfficiency), (.highestWastedBytes, highestWastedBytes),
                                  (.highestUserWastedPercent, highestUserWastedPercent)] {
                if let value { try rules.set(rule, value, source: "--\(rule.rawValue)") }
            }
        } catch {
            DaemonLog.complain(error.description)
            throw ExitCode(2)
        }
        do {
            outcome = try EfficiencyReports.check(source.origin, rules: rules, configFile: file,
                                                  style: OutputStyle(json: json))
        } catch {
            DaemonLog.complain(error.description)
            throw ExitCode(2)
        }
        print(outcome.report, terminator: "")
        if !outcome.passed { throw ExitCode(1) }
    }
}
