// The README's example, run as it is written against a real broker.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { PACKAGE_DIR, Proc, startBroker } from './helpers.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const example = readme.split('## Example')[1];
const [, code] = example.match(/```js\n([\s\S]*?)```/);
const [, expected] = example.match(/```text\n([\s\S]*?)```/);

test('the README example runs as is and prints what the README says', async () => {
  const broker = await startBroker();
  try {
    const run = new Proc(process.execPath, ['--input-type=module', '--eval', code], {
      cwd: PACKAGE_DIR,
      env: { ...process.env, YARD_BROKER: broker.endpoint },
    });
    const timer = setTimeout(() => run.kill('SIGKILL'), 20_000);
    const { code: exitCode } = await run.exited;
    clearTimeout(timer);
    assert.equal(exitCode, 0, run.output);
    assert.equal(run.output, expected);
  } finally {
    await broker.stop();
  }
});
