// A stand-in for the real cookie extractor: a bull@4 worker that, for each job, "exports" a jar by
// copying JAR_FILE over job.data.cookies_file (write to a temp name, then rename, as an upload
// does) and completes. FAIL_ATTEMPTS makes the first N attempts of every job fail; a job whose
// data says {"fail": true} always fails, {"hold": true} stays active until the worker is killed
// (HOLD=1: every job does).
// JAR_MARK, when set, is replaced in the exported jar by JAR_MARK + the job id: every job uploads a
// new login session. CLOCK_SKEW_MS shifts the worker's clock (Date.now, hence bull's finishedOn),
// as on an extractor host whose clock is off.
// Prints one JSON line per event on stdout, with the worker's clock in `at` (ms).
'use strict';
const skew = Number(process.env.CLOCK_SKEW_MS || 0);
if (skew) {
  const realNow = Date.now;
  Date.now = () => realNow() + skew;
}
const Queue = require('bull');
const fs = require('fs');
const path = require('path');

const queue = new Queue(process.env.QUEUE || 'cookie-refresh', process.env.REDIS_URL);
const failAttempts = Number(process.env.FAIL_ATTEMPTS || 0);
const jarFile = process.env.JAR_FILE || '';
const print = (event, fields) => console.log(JSON.stringify({ event, at: Date.now(), ...fields }));

queue.process(async (job) => {
  print('processing', { id: job.id, name: job.name, data: job.data, opts: job.opts,
                        attemptsMade: job.attemptsMade });
  if (job.data.hold || process.env.HOLD) await new Promise(() => {});
  if (job.data.fail || job.attemptsMade < failAttempts) {
    throw new Error('browser export failed on purpose');
  }
  if (jarFile) {
    const target = job.data.cookies_file;
    const tmp = path.join(path.dirname(target), `.upload-${process.pid}-${job.id}`);
    let jar = fs.readFileSync(jarFile, 'utf8');
    const mark = process.env.JAR_MARK;
    if (mark) jar = jar.split(mark).join(`${mark}${job.id}`);
    fs.writeFileSync(tmp, jar, { mode: 0o600 });
    fs.renameSync(tmp, target);
  }
  return { ok: true, uploaded: Boolean(jarFile) };
});
queue.on('completed', (job, result) => print('completed', { id: job.id, result }));
queue.on('failed', (job, err) => print('failed', { id: job.id, error: err.message,
                                                    attemptsMade: job.attemptsMade }));
queue.isReady().then(() => print('ready', {}));
const stop = () => queue.close(true).then(() => process.exit(0)); // true: don't wait for held jobs
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
