// `self-healing-controller lint-rules FILE...`: runs lintRules over rule files
// and prints one line per finding.
//
// Exit codes: 0 no findings, 1 findings, 2 a file could not be read or is not
// valid YAML / not a rule file (this wins over 1; the other files are still
// linted and reported).

import { readFile } from 'node:fs/promises'
import { lintRules, RuleFileError, type LintOptions } from './lint.ts'

export const LINT_USAGE = 'usage: self-healing-controller lint-rules FILE...'

export async function lintRulesCommand (
  files: string[],
  out: (line: string) => void,
  options: LintOptions = {}
): Promise<number> {
  if (files.length === 0) {
    out(LINT_USAGE)
    return 2
  }
  let unreadable = 0
  let findingCount = 0
  for (const file of files) {
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (e) {
      out(`${file}: cannot read: ${(e as Error).message}`)
      unreadable++
      continue
    }
    try {
      for (const f of lintRules(text, file, options)) {
        out(`${f.file}: group "${f.group}": ${f.message}`)
        findingCount++
      }
    } catch (e) {
      if (!(e instanceof RuleFileError)) throw e
      out(e.message)
      unreadable++
    }
  }
  if (unreadable > 0) {
    out(`lint-rules: ${unreadable} of ${files.length} file(s) could not be linted, ${findingCount} finding(s)`)
    return 2
  }
  if (findingCount > 0) {
    out(`lint-rules: ${findingCount} finding(s) in ${files.length} file(s)`)
    return 1
  }
  out(`lint-rules: ${files.length} file(s), no findings`)
  return 0
}
