*** Settings ***
Documentation    The emulated SSD under a VM: sustained 4 KiB random writes in the guest on a client
...              QLC drive fill its free blocks in about ten seconds, then garbage collection moves
...              valid pages on the dies and the write rate falls off the cliff; wear grows as it
...              goes. The log shows the IOPS and latency chart with the drive's states (buffer
...              full, GC) shaded, the drive's timeline and its health before and after. The
...              negative proof runs the same writes on a datacenter drive, which has no cliff.

Library          DriveLibrary
Resource         ../../resources/faults.resource

Test Tags        drive_model    vm


*** Variables ***
${RUNTIME}      45
# 128 MiB + 12 % over-provisioning: one fill at the guest's ~3.5k IOPS takes about ten seconds.
${QLC_SIZE}     128M
# Fresh-out-of-box IOPS at least this many times the last 10 s (the host benchmark measures >= 3).
${MIN_CLIFF}    2


*** Test Cases ***
Sustained Random Writes On A Client QLC Drive Fall Off The Write Cliff
    [Documentation]    ${RUNTIME} s of QD16 random writes: the cliff, GC and growing wear.
    ${drive}    Start Emulated Drive    client-qlc    size=${QLC_SIZE}
    ${result}    ${before}    ${after}    Write For A While    ${drive}    qlc
    Write Cliff Should Be Seen    ${result}    min_ratio=${MIN_CLIFF}    head=5s    tail=10s
    Drive Event Should Have Happened    ${drive}    gc
    Drive Wear Should Have Grown    ${before}    ${after}

A Datacenter Drive Keeps Up With The Same Writes
    [Documentation]    Negative proof of the cliff verdict: 28 % over-provisioning and 160 MiB/s of
    ...    programs keep up with the guest, so `Write Cliff Should Be Seen` fails naming both figures.
    ${drive}    Start Emulated Drive    datacenter-tlc    size=${QLC_SIZE}
    ${result}    ${_}    ${_}    Write For A While    ${drive}    tlc    runtime=20
    Run Keyword And Expect Error    no write cliff: fresh-out-of-box * below ${MIN_CLIFF}
    ...    Write Cliff Should Be Seen    ${result}    min_ratio=${MIN_CLIFF}    head=5s    tail=5s


*** Keywords ***
Write For A While
    [Documentation]    Launch a VM on ${drive}, run QD16 4 KiB random writes for ${runtime} s with
    ...    fio's logs on the host clock, chart them with the drive's states shaded, and return the
    ...    result and the drive's health before and after.
    [Arguments]    ${drive}    ${name}    ${runtime}=${RUNTIME}
    ${vm}    Launch NVMe VM    name=${name}    nbd=${drive.uri}
    ${before}    Get Drive Health    ${drive}
    ${fio}    Start Timed Fio Job On VM    ${vm}    drive/random_writes    runtime=${runtime}
    ${result}    Wait For Timed Fio Job On VM    ${fio}
    ${after}    Get Drive Health    ${drive}
    Get Drive Events    ${drive}
    Log Drive States Chart    ${result}    ${drive}
    RETURN    ${result}    ${before}    ${after}
