from cherrypick.catalog.refresh.build import main

raise SystemExit(main())
