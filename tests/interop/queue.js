// One-shot bull@4 queue operations for the tests, printed as one JSON line:
//   node queue.js counts | pause | resume | job <id> | add <data JSON> | obliterate
// `add` is a producer of its own (the backend's legacy enqueue): queue.add(data), bull's defaults.
'use strict';
const Queue = require('bull');

const [command, arg] = process.argv.slice(2);
const queue = new Queue(process.env.QUEUE || 'cookie-refresh', process.env.REDIS_URL);

async function run() {
  switch (command) {
    case 'counts': return queue.getJobCounts();
    case 'pause': await queue.pause(); return { paused: await queue.isPaused() };
    case 'resume': await queue.resume(); return { paused: await queue.isPaused() };
    case 'job': {
      const job = await queue.getJob(arg);
      if (!job) return null;
      return { id: job.id, name: job.name, data: job.data, opts: job.opts, timestamp: job.timestamp,
               delay: job.delay, state: await job.getState(), attemptsMade: job.attemptsMade };
    }
    case 'add': return { id: (await queue.add(JSON.parse(arg))).id };
    case 'obliterate': await queue.obliterate({ force: true }); return { obliterated: true };
    default: throw new Error(`unknown command ${command}`);
  }
}

run()
  .then((out) => console.log(JSON.stringify(out)))
  .catch((err) => { console.error(err.message); process.exitCode = 1; })
  .finally(() => queue.close());
