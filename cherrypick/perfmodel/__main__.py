from cherrypick.perfmodel.ranking import main

raise SystemExit(main())
