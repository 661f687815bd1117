-- wrk script: POST a trigger like the download backend does after a bot check.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"reason": "bot_detection", "error": "ERROR: [youtube] x: Sign in to confirm you’re not a bot", "video_id": "jNQXAC9IVRw"}'
