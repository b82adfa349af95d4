#!/usr/bin/env node
// `node cli/runbook.js` runs runbook as the `runbook` command does: the program is
// cli/runbook.cjs, CommonJS, which the launcher (cli/runbook) starts directly (node's ES module
// loader, which this file goes through, costs about 6 ms more).
import './runbook.cjs'
