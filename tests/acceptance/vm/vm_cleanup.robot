*** Settings ***
Documentation    No QEMU outlives its test: on keyword/test timeout, on Ctrl-C, and when the Robot
...              process is killed (QEMU dies with its parent).

Library          OperatingSystem
Library          Process

Test Tags        vm    acceptance    cleanup


*** Variables ***
${WORKERS}    ${CURDIR}${/}..${/}..${/}workers${/}vm_cleanup


*** Test Cases ***
Test Timeouts Stop Their VMs
    [Documentation]    Both tests of the worker suite time out; their VMs are gone afterwards.
    ${result}    Run Worker Robot    timeouts.robot
    Should Be Equal As Integers    ${result.rc}    2    ${result.stdout}
    Should Contain    ${result.stdout}    Test timeout 2 seconds exceeded.
    Should Contain    ${result.stdout}    Test timeout 30 seconds exceeded.
    No QEMU Should Run    nvmechaos-timeout-

Ctrl-C Stops The VM
    [Documentation]    Two SIGINTs (Ctrl-C twice) end Robot; the VM is gone.
    ${process}    Start Sleeper
    Send Signal To Process    SIGINT    ${process}
    Sleep    1s
    Send Signal To Process    SIGINT    ${process}
    Wait For Process    ${process}    timeout=60s    on_timeout=kill
    Wait Until Keyword Succeeds    15s    0.5s    No QEMU Should Run    nvmechaos-sleeper

Killing Robot Kills The VM
    [Documentation]    SIGKILL leaves no chance to clean up: QEMU must die with its parent.
    ${process}    Start Sleeper
    Send Signal To Process    SIGKILL    ${process}
    Wait For Process    ${process}    timeout=30s
    Wait Until Keyword Succeeds    15s    0.5s    No QEMU Should Run    nvmechaos-sleeper


*** Keywords ***
Run Worker Robot
    [Documentation]    Run one worker suite in its own Robot process and return the result.
    [Arguments]    ${suite}
    ${python}    Evaluate    sys.executable
    ${result}    Run Process    ${python}    -m    robot    --outputdir    ${OUTPUT DIR}${/}${suite}
    ...    ${WORKERS}${/}${suite}    timeout=300s    on_timeout=kill    stderr=STDOUT
    Log    ${result.stdout}
    RETURN    ${result}

Start Sleeper
    [Documentation]    Start the sleeper suite in the background and wait until its VM is ready.
    ${python}    Evaluate    sys.executable
    ${process}    Start Process    ${python}    -m    robot    --outputdir    ${OUTPUT DIR}${/}sleeper
    ...    ${WORKERS}${/}sleeper.robot    stdout=${OUTPUT DIR}${/}sleeper.out    stderr=STDOUT
    Wait Until Keyword Succeeds    120s    1s    File Should Contain    ${OUTPUT DIR}${/}sleeper.out    VM READY
    ${qemu}    Run Process    pgrep    -f    nvmechaos-sleeper
    Should Be Equal As Integers    ${qemu.rc}    0    the sleeper's QEMU is not running
    RETURN    ${process}

File Should Contain
    [Documentation]    Fail unless ${path} contains ${text}.
    [Arguments]    ${path}    ${text}
    ${content}    Get File    ${path}
    Should Contain    ${content}    ${text}

No QEMU Should Run
    [Documentation]    Fail if a process whose command line contains ${pattern} runs.
    [Arguments]    ${pattern}
    ${result}    Run Process    pgrep    -af    ${pattern}
    Should Be Equal As Integers    ${result.rc}    1    still running: ${result.stdout}
