from cookie_supervisor.cli import main

raise SystemExit(main())
