from cherrypick.cli import main

raise SystemExit(main())
