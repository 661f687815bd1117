// A real bullmq@5 peer on the daemon's queue (same Redis, prefix `bull`, queue name):
//   node bullmq.js worker   a Worker standing in for the cookie extractor, like extractor.js:
//                           copies JAR_FILE over job.data.cookies_file (temp name, then rename)
//                           and completes; FAIL_ATTEMPTS makes the first N attempts of a job fail.
//                           Prints one JSON line per event on stdout.
//   node bullmq.js counts   bullmq's own Queue.getJobCounts(), as one JSON line.
'use strict';
const { Queue, Worker } = require('bullmq');
const fs = require('fs');
const path = require('path');

const name = process.env.QUEUE || 'cookie-refresh';
const url = new URL(process.env.REDIS_URL);
const connection = { host: url.hostname, port: Number(url.port || 6379), db: Number(url.pathname.slice(1) || 0) };
const failAttempts = Number(process.env.FAIL_ATTEMPTS || 0);
const jarFile = process.env.JAR_FILE || '';
const print = (event, fields) => console.log(JSON.stringify({ event, at: Date.now(), ...fields }));

async function counts() {
  const queue = new Queue(name, { connection, prefix: 'bull' });
  try {
    const found = await queue.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed', 'paused');
    console.log(JSON.stringify(found));
  } finally {
    await queue.close();
  }
}

function worker() {
  const w = new Worker(name, async (job) => {
    print('processing', { id: job.id, name: job.name, data: job.data, opts: job.opts,
                          attemptsMade: job.attemptsMade });
    if (job.attemptsMade < failAttempts) throw new Error('browser export failed on purpose');
    if (jarFile) {
      const target = job.data.cookies_file;
      const tmp = path.join(path.dirname(target), `.upload-${process.pid}-${job.id}`);
      fs.writeFileSync(tmp, fs.readFileSync(jarFile, 'utf8'), { mode: 0o600 });
      fs.renameSync(tmp, target);
    }
    return { ok: true, uploaded: Boolean(jarFile) };
  }, { connection, prefix: 'bull', drainDelay: 1 });
  w.on('completed', (job, result) => print('completed', { id: job.id, result }));
  w.on('failed', (job, err) => print('failed', { id: job && job.id, error: err.message,
                                                 attemptsMade: job && job.attemptsMade }));
  w.on('error', (err) => print('error', { error: err.message }));
  w.waitUntilReady().then(() => print('ready', { version: require('bullmq/package.json').version }));
  const stop = () => w.close(true).then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[2] === 'counts') {
  counts().catch((err) => { console.error(err.message); process.exitCode = 1; });
} else if (process.argv[2] === 'worker') {
  worker();
} else {
  console.error('usage: node bullmq.js worker|counts');
  process.exitCode = 2;
}
