/**
 * `--json`: one JSON object per line for every event; the last line is the summary.
 */
import type { EventSink } from './events.ts'

/**
 * An event sink writing NDJSON.
 * @example execute({ ..., emit: jsonReporter(process.stdout) })
 */
export function jsonReporter(out: NodeJS.WritableStream): EventSink {
  return (e) => {
    out.write(`${JSON.stringify(e)}\n`)
  }
}
