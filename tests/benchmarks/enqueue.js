// Node bull's own queue.add() on a fresh queue: N jobs one at a time, or N with INFLIGHT in flight.
// Prints {"rate": jobs per second}.
'use strict';
const Queue = require('bull');

const [url, queueName, n, inflight] = [process.argv[2], process.argv[3], Number(process.argv[4]),
                                       Number(process.argv[5] || 1)];
const data = (i) => ({ i, reason: 'bench', source: 'default', cookies_file: '/srv/cookies.txt' });

(async () => {
  const queue = new Queue(queueName, url);
  await queue.isReady();
  await queue.add(data(-1)); // warm: connection, script load
  const start = process.hrtime.bigint();
  for (let done = 0; done < n; done += inflight) {
    const batch = [];
    for (let i = done; i < Math.min(n, done + inflight); i++) batch.push(queue.add(data(i)));
    await Promise.all(batch);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(JSON.stringify({ rate: n / seconds }));
  await queue.close();
})();
