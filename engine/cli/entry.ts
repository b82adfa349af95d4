/**
 * The composition root of the executable: the engine's CLI with the project's modules,
 * connections and lab plugged in.
 */
import { localOnlyFactory } from '../connection/factory.ts'
import { registry } from '../../modules/index.ts'
import { main } from './main.ts'

/** Runs the CLI; resolves to the exit code. */
export async function run(argv: string[]): Promise<number> {
  return main(argv, { registry, connections: () => localOnlyFactory() })
}
