/**
 * How modules reach a host. A module never knows whether it runs here or over SSH: it runs shell
 * commands and moves files through this interface. Implementations keep one connection per host
 * for the whole run.
 */

/** Privilege escalation, as Ansible's become. */
export interface BecomeOptions {
  /** Only sudo for now. */
  method: 'sudo'
  /** The user to become; root by default. */
  user?: string | undefined
  /** sudo's password, if the host asks for one. Never printed. */
  password?: string | undefined
}

/** Options of one command. */
export interface ExecOptions {
  /** Bytes written to the command's standard input, then closed. */
  stdin?: string | Buffer | undefined
  /** Kill the command and fail with E_TIMEOUT after this long. */
  timeoutMs?: number | undefined
  become?: BecomeOptions | undefined
  env?: Record<string, string> | undefined
  cwd?: string | undefined
  /**
   * Whether running the command twice is harmless (read-only probes). A connection that drops in
   * the middle of an idempotent command may run it again on a new connection; a non-idempotent
   * one is never run twice: the step fails instead.
   */
  idempotent?: boolean | undefined
  signal?: AbortSignal | undefined
}

/** The outcome of one command. A non-zero rc is a result, not an exception. */
export interface ExecResult {
  rc: number
  stdout: string
  stderr: string
}

/** Options of an atomic file write. */
export interface WriteFileOptions {
  /** File mode, e.g. 0o644. Kept from the old file when absent; 0o644 for a new file. */
  mode?: number | undefined
  owner?: string | undefined
  group?: string | undefined
  become?: BecomeOptions | undefined
}

/**
 * A live connection to one host.
 * @example
 * const r = await conn.exec('ip -j route show default', { idempotent: true })
 */
export interface Connection {
  /** The inventory name of the host. */
  readonly host: string
  readonly kind: 'local' | 'ssh'
  /** Runs `command` with /bin/sh -c on the host. */
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>
  /** The file's bytes, or null when it does not exist. */
  readFile(path: string, opts?: { become?: BecomeOptions | undefined }): Promise<Buffer | null>
  /**
   * Replaces `path` atomically: a temp file in the same directory, fsync, rename. A crash at any
   * point leaves either the old file or the new one, never a mix.
   */
  writeFile(path: string, data: string | Buffer, opts?: WriteFileOptions): Promise<void>
  close(): Promise<void>
}
