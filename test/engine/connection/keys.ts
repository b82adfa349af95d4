/**
 * Real keys and the fingerprints `ssh-keygen -l` printed for them, shared by the host key tests.
 */

/** An ed25519 host key (ssh-keygen -t ed25519 -C root@vm1). */
export const ED25519 = {
  line: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPsottnw9qJAg0vrIG6JX8Zm2wRnBMkr9eT0Dg41LdVQ root@vm1',
  b64: 'AAAAC3NzaC1lZDI1NTE5AAAAIPsottnw9qJAg0vrIG6JX8Zm2wRnBMkr9eT0Dg41LdVQ',
  sha256: 'SHA256:TDEVTH9HGQBtNYzpKpcRE8VrtETe1LWCRtDUT830VH8',
  md5: 'MD5:f0:94:f2:e6:dc:25:2a:bb:d7:03:52:28:77:5b:75:88',
  /** `ssh-keygen -H` of `192.0.2.11` and of `[192.0.2.11]:2222` with this key. */
  hashed: '|1|lR3N6zZivJQlptuoG9y6OOjmJmc=|iTEDLhMxfe2ffwq6JrdIZXBq0r4=',
  hashedPort: '|1|byYeEHtZqKJpk2DQhcxxaKU+JlM=|ovU0DkWNn/kRrVZZTh5o1XoXUFc=',
}

/** An ecdsa-sha2-nistp256 host key. */
export const ECDSA = {
  line: 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBODiXTUEg0fJOcyypYzIJwZRlzCKZrtOzM0WXRephXaK2D/d+1bUN2WZBIyAVd3ZzkbLP/yQ4ok1Na06pHG1O44= root@vm1',
  b64: 'AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBODiXTUEg0fJOcyypYzIJwZRlzCKZrtOzM0WXRephXaK2D/d+1bUN2WZBIyAVd3ZzkbLP/yQ4ok1Na06pHG1O44=',
  sha256: 'SHA256:c/eNscCIsUqiJcTlrhVS0XtAFfbN2sHEdHEsqKCImoY',
}

/** A second ed25519 key: the "changed" key of a rebuilt host. */
export const OTHER_ED25519 = {
  b64: 'AAAAC3NzaC1lZDI1NTE5AAAAILD1tDqyirH31NkaDO7SuKTMpcS2FMGsXO9UToThN90R',
}
