from bench.api import main

main()
