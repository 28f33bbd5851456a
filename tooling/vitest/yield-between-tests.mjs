// A vitest setup file (every package's config loads it through shared.ts): before each test, let the
// worker's event loop turn, so that the replies to its RPC calls are read.
//
// Why: the worker reports progress to the vitest host with `onTaskUpdate` calls, each with a fixed 60 s
// reply timeout (birpc's DEFAULT_TIMEOUT in vitest 3; no option sets it). The reply is only read when the
// worker's event loop reaches its poll phase. Synchronous tests (most CPU-backend tests) run back to back
// on microtasks and never get there, so on a busy machine a file whose tests together pass 60 s fails with
// `[vitest-worker]: Timeout calling "onTaskUpdate"` although every test passed (eight 9 s tests are
// enough; see docs/decisions/0007-training-checkpoints-and-tests-under-load.md). Two setImmediate
// turns guarantee one poll phase in between, whatever phase the loop is in; this bounds the risk to a
// single test over 60 s.
import { beforeEach } from 'vitest';

const turn = () => new Promise((resolve) => setImmediate(resolve));

beforeEach(async () => {
  await turn();
  await turn();
});
