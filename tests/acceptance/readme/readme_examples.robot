*** Settings ***
Documentation    README.md is the user's manual: its Robot examples run as written, each saved
...              in the repository's root as the README says (a Robot process of its own, real
...              fio and QEMU). Its shell examples run in benchmarks/soak.py --readme.

Library          ReadmeExamples.py

Test Tags        readme


*** Test Cases ***
Every Robot Example Has A Test
    README Should Have Robot Examples    3

Writing A Suite Example Runs As Written
    README Robot Example Should Pass    1    Mixed Workload Meets The Default Profile

Emulated Target Example Runs As Written
    [Tags]    vm
    README Robot Example Should Pass    2    Mixed Workload In The Guest

Emulated SSD Example Runs As Written
    [Tags]    drive_model
    README Robot Example Should Pass    3    Random Writes Wear A Client QLC Drive
